"""CPU and memory from cumulative counters, by ECS's and docker's formulas (tables of cases)."""

from __future__ import annotations

import pytest

from miniecs.metrics import readings as m
from miniecs.runtime.base import RawUsage

NS = 1_000_000_000


@pytest.mark.parametrize(
    ("cpu_delta", "system_delta", "online", "expected"),
    [
        # one core busy on a 2-CPU host: the host counter moves 2 s per second
        (NS, 2 * NS, 2, 1024.0),
        (NS // 4, 2 * NS, 2, 256.0),  # 0.25 vCPU
        (0, 2 * NS, 2, 0.0),  # idle
        (3 * NS, 4 * NS, 4, 3072.0),  # three cores of four
        (NS, 0, 2, None),  # the host counter did not move
        (-1, 2 * NS, 2, None),  # a counter reset (restart)
        (NS, 2 * NS, 0, None),
    ],
)
def test_cpu_units_from_system(
    cpu_delta: int, system_delta: int, online: int, expected: float | None
) -> None:
    assert m.cpu_units_from_system(cpu_delta, system_delta, online) == expected


@pytest.mark.parametrize(
    ("cpu_delta", "wall_delta", "expected"),
    [
        (NS, NS, 1024.0),
        (NS // 2, NS, 512.0),
        (NS // 4, NS // 2, 512.0),
        (2 * NS, NS, 2048.0),
        (0, NS, 0.0),
        (NS, 0, None),
        (-5, NS, None),
    ],
)
def test_cpu_units_from_wall(cpu_delta: int, wall_delta: int, expected: float | None) -> None:
    assert m.cpu_units_from_wall(cpu_delta, wall_delta) == expected


def reading(source: str, read_ns: int, cpu_ns: int, system_ns: int | None = None) -> RawUsage:
    return RawUsage(
        read_ns=read_ns,
        cpu_ns=cpu_ns,
        memory_bytes=0,
        system_ns=system_ns,
        online_cpus=2,
        source=source,
    )


@pytest.mark.parametrize(
    ("prev", "cur", "expected"),
    [
        (reading("stats", 0, 0, 0), reading("stats", NS, NS // 2, 2 * NS), 512.0),
        # with a host counter the wall clock is ignored (ECS's formula)
        (reading("stats", 0, 0, 0), reading("stats", 5 * NS, NS // 2, 2 * NS), 512.0),
        (reading("cgroup", 0, 0), reading("cgroup", 2 * NS, NS), 512.0),
        (reading("cgroup", 0, 0), reading("stats", NS, NS, 2 * NS), None),
        (reading("cgroup", NS, 0), reading("cgroup", NS, NS), None),
    ],
)
def test_cpu_units_between_readings(prev: RawUsage, cur: RawUsage, expected: float | None) -> None:
    assert m.cpu_units(prev, cur) == expected


@pytest.mark.parametrize(
    ("stat", "expected"),
    [
        ({"total_inactive_file": 100, "inactive_file": 7, "cache": 500}, 100),  # cgroup v1
        ({"inactive_file": 70, "active_file": 5}, 70),  # cgroup v2
        ({"cache": 500}, 0),
    ],
)
def test_inactive_file_prefers_v1_total(stat: dict[str, int], expected: int) -> None:
    assert m.inactive_file(stat) == expected


@pytest.mark.parametrize(
    ("usage", "inactive", "expected"),
    [
        (10_000, 4_000, 6_000),
        (10_000, 0, 10_000),
        (10_000, 10_000, 10_000),  # docker's CLI keeps usage when the cache is not smaller
        (10_000, 12_000, 10_000),
    ],
)
def test_memory_used_subtracts_page_cache(usage: int, inactive: int, expected: int) -> None:
    assert m.memory_used_bytes(usage, inactive) == expected


@pytest.mark.parametrize(
    ("prev", "cur", "seconds", "expected"),
    [(0, 1000, 2.0, 500.0), (1000, 1000, 1.0, 0.0), (1000, 10, 1.0, 0.0), (0, 10, 0.0, 0.0)],
)
def test_rate(prev: int, cur: int, seconds: float, expected: float) -> None:
    assert m.rate(prev, cur, seconds) == expected


def test_container_usage_in_ecs_units() -> None:
    mib = 1024 * 1024
    prev = RawUsage(0, 0, 300 * mib, rx_bytes=0, tx_bytes=0, read_bytes=10, source="cgroup")
    cur = RawUsage(
        2 * NS,
        NS // 2,
        300 * mib,
        inactive_file_bytes=44 * mib,
        rx_bytes=4000,
        tx_bytes=2000,
        read_bytes=4106,
        write_bytes=8,
        source="cgroup",
    )
    usage = m.container_usage("app", prev, cur, cpu_reserved=256, memory_reserved_mib=512)
    assert usage is not None
    assert usage.cpu_units == 256.0
    assert usage.cpu_percent == 100.0
    assert usage.memory_mib == 256.0
    assert usage.memory_percent == 50.0
    assert (usage.rx_bytes, usage.tx_bytes) == (2000.0, 1000.0)
    assert (usage.read_bytes, usage.write_bytes) == (4096.0, 8.0)
    assert m.container_usage("app", cur, prev, 256, 512) is None
