"""From two readings of a container's cumulative counters to what ECS reports. Pure.

CPU follows ECS's agent and docker's CLI (`stats_helpers.go`): with the stats API's host
counter, cores used = Δcontainer CPU / Δsystem CPU * online CPUs; from a cgroup, which has no
host counter, cores used = Δcontainer CPU ns / Δwall ns. Either way CPU units = cores * 1024.
Memory used is usage minus the inactive page cache, as `docker stats` shows it. The sampler
(`metrics.sampler`) feeds these with `RawUsage` readings from the runtime.
"""

from __future__ import annotations

from miniecs.metrics.usage import ContainerUsage
from miniecs.runtime.base import RawUsage
from miniecs.runtime.base import inactive_file as inactive_file

CPU_UNITS_PER_CORE = 1024
MIB = 1024 * 1024
_NS = 1_000_000_000


def cpu_units_from_system(
    cpu_delta_ns: int, system_delta_ns: int, online_cpus: int
) -> float | None:
    """ECS's formula on stats-API counters; None when the host counter did not move."""
    if cpu_delta_ns < 0 or system_delta_ns <= 0 or online_cpus <= 0:
        return None
    return cpu_delta_ns / system_delta_ns * online_cpus * CPU_UNITS_PER_CORE


def cpu_units_from_wall(cpu_delta_ns: int, wall_delta_ns: int) -> float | None:
    """The cgroup variant: CPU time over elapsed time; None for an empty or reversed span."""
    if cpu_delta_ns < 0 or wall_delta_ns <= 0:
        return None
    return cpu_delta_ns / wall_delta_ns * CPU_UNITS_PER_CORE


def cpu_units(prev: RawUsage, cur: RawUsage) -> float | None:
    """CPU units used between two readings of one container; None when they cannot be
    compared (different sources, counter reset by a restart, no time elapsed)."""
    if prev.source != cur.source:
        return None
    cpu_delta = cur.cpu_ns - prev.cpu_ns
    if cur.system_ns is not None and prev.system_ns is not None:
        return cpu_units_from_system(cpu_delta, cur.system_ns - prev.system_ns, cur.online_cpus)
    return cpu_units_from_wall(cpu_delta, cur.read_ns - prev.read_ns)


def memory_used_bytes(usage_bytes: int, inactive_file_bytes: int) -> int:
    """Usage minus inactive page cache; the raw usage when the cache is not smaller."""
    if inactive_file_bytes < usage_bytes:
        return usage_bytes - inactive_file_bytes
    return usage_bytes


def rate(prev_bytes: int, cur_bytes: int, seconds: float) -> float:
    """Bytes per second between two cumulative counters (0 after a reset)."""
    if seconds <= 0 or cur_bytes < prev_bytes:
        return 0.0
    return (cur_bytes - prev_bytes) / seconds


def elapsed_seconds(prev: RawUsage, cur: RawUsage) -> float:
    return (cur.read_ns - prev.read_ns) / _NS if prev.source == cur.source else 0.0


def container_usage(
    name: str,
    prev: RawUsage,
    cur: RawUsage,
    cpu_reserved: float,
    memory_reserved_mib: float,
) -> ContainerUsage | None:
    """One container's usage over the interval between two readings, in ECS's units."""
    units = cpu_units(prev, cur)
    if units is None:
        return None
    seconds = elapsed_seconds(prev, cur)
    return ContainerUsage(
        container_name=name,
        cpu_units=units,
        cpu_reserved=cpu_reserved,
        memory_mib=memory_used_bytes(cur.memory_bytes, cur.inactive_file_bytes) / MIB,
        memory_reserved_mib=memory_reserved_mib,
        rx_bytes=rate(prev.rx_bytes, cur.rx_bytes, seconds),
        tx_bytes=rate(prev.tx_bytes, cur.tx_bytes, seconds),
        read_bytes=float(max(0, cur.read_bytes - prev.read_bytes)),
        write_bytes=float(max(0, cur.write_bytes - prev.write_bytes)),
    )
