"""Reading containers' CPU, memory, network and storage counters for `DockerRuntime`.

Two sources give the same counters. The Docker stats API is portable (remote engines, Docker
Desktop) but costly: a stats call waits for a second sample, so we keep one persistent stream
per container (a sample a second each; the engine pays a few ms of CPU per container-second).
When the engine is local and the container's cgroup is visible, reading the cgroup files
directly costs tens of microseconds and nothing in the engine; it is the accelerator. `auto`
uses the cgroup where it can and the streams elsewhere, and cross-checks the two once on the
first container it reads: if they disagree it warns and falls back to the stats API.

Blocking code: `DockerRuntime` calls `UsageReader.read` on its thread pool.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from miniecs.runtime.base import RawUsage, inactive_file

log = logging.getLogger(__name__)

SOURCES = ("auto", "cgroup", "stats")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def _read_stat(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


def _net_dev(pid: str, proc: Path) -> tuple[int, int]:
    """Received and sent bytes of every interface but loopback in the process's netns."""
    rx = tx = 0
    for line in (proc / pid / "net" / "dev").read_text().splitlines()[2:]:
        name, _, fields = line.partition(":")
        if name.strip() == "lo":
            continue
        values = fields.split()
        rx += int(values[0])
        tx += int(values[8])
    return rx, tx


@dataclass(frozen=True, slots=True)
class CgroupPaths:
    version: int
    cpu: Path
    memory: Path
    io: Path
    own_network: bool
    """False when the container joins another's network namespace (a multi-container task):
    the task's traffic is then counted once, on the namespace's owner."""


class CgroupReader:
    """Counters from a container's cgroup files: v1 (cgroupfs `docker/<id>` or systemd
    `system.slice/docker-<id>.scope`) and v2 (the same two layouts under the unified root)."""

    def __init__(self, root: Path = CGROUP_ROOT, proc: Path = Path("/proc")) -> None:
        self.root = root
        self.proc = proc
        self.version = 2 if (root / "cgroup.controllers").exists() else 1

    def locate(self, container_id: str, own_network: bool = True) -> CgroupPaths | None:
        suffixes = (
            Path("docker") / container_id,
            Path("system.slice") / f"docker-{container_id}.scope",
        )
        for suffix in suffixes:
            if self.version == 2:
                base = self.root / suffix
                if (base / "cpu.stat").exists():
                    return CgroupPaths(2, base, base, base, own_network)
                continue
            cpu = next(
                (
                    self.root / c / suffix
                    for c in ("cpuacct", "cpu,cpuacct")
                    if (self.root / c / suffix / "cpuacct.usage").exists()
                ),
                None,
            )
            memory = self.root / "memory" / suffix
            if cpu is not None and (memory / "memory.usage_in_bytes").exists():
                return CgroupPaths(1, cpu, memory, self.root / "blkio" / suffix, own_network)
        return None

    def read(self, paths: CgroupPaths) -> RawUsage | None:
        """One reading; None when the cgroup is gone or holds no process any more."""
        try:
            procs = (paths.cpu / "cgroup.procs").read_text().split()
            if not procs:
                return None
            if paths.version == 1:
                cpu_ns = _read_int(paths.cpu / "cpuacct.usage")
                usage = _read_int(paths.memory / "memory.usage_in_bytes")
                stat = _read_stat(paths.memory / "memory.stat")
                read_bytes, write_bytes = self._blkio(paths.io)
            else:
                cpu_ns = _read_stat(paths.cpu / "cpu.stat")["usage_usec"] * 1000
                usage = _read_int(paths.memory / "memory.current")
                stat = _read_stat(paths.memory / "memory.stat")
                read_bytes, write_bytes = self._io_stat(paths.io)
            rx, tx = _net_dev(procs[0], self.proc) if paths.own_network else (0, 0)
        except (OSError, ValueError, KeyError, IndexError):
            return None
        return RawUsage(
            read_ns=time.monotonic_ns(),
            cpu_ns=cpu_ns,
            memory_bytes=usage,
            inactive_file_bytes=inactive_file(stat),
            rx_bytes=rx,
            tx_bytes=tx,
            read_bytes=read_bytes,
            write_bytes=write_bytes,
            source="cgroup",
        )

    @staticmethod
    def _blkio(base: Path) -> tuple[int, int]:
        read = write = 0
        path = base / "blkio.throttle.io_service_bytes_recursive"
        if not path.exists():
            return 0, 0
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "Read":
                read += int(parts[2])
            elif len(parts) == 3 and parts[1] == "Write":
                write += int(parts[2])
        return read, write

    @staticmethod
    def _io_stat(base: Path) -> tuple[int, int]:
        read = write = 0
        path = base / "io.stat"
        if not path.exists():
            return 0, 0
        for line in path.read_text().splitlines():
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "rbytes":
                    read += int(value)
                elif key == "wbytes":
                    write += int(value)
        return read, write


def _timestamp_ns(text: str) -> int:
    """Docker's RFC 3339 timestamp with nanoseconds, as epoch nanoseconds."""
    base, _, rest = text.rstrip("Z").partition(".")
    digits = "".join(ch for ch in rest if ch.isdigit())[:9].ljust(9, "0")
    seconds = datetime.fromisoformat(base + "+00:00").timestamp()
    return int(seconds) * 1_000_000_000 + int(digits)


def parse_stats(doc: dict[str, Any]) -> RawUsage | None:
    """A stats-API document as a reading; None for a stopped container's empty one."""
    cpu = doc.get("cpu_stats") or {}
    system = cpu.get("system_cpu_usage")
    if not system:
        return None
    usage = cpu.get("cpu_usage") or {}
    online = cpu.get("online_cpus") or len(usage.get("percpu_usage") or []) or 1
    memory = doc.get("memory_stats") or {}
    networks = (doc.get("networks") or {}).values()
    io = (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return RawUsage(
        read_ns=_timestamp_ns(doc["read"]),
        cpu_ns=int(usage.get("total_usage") or 0),
        system_ns=int(system),
        online_cpus=int(online),
        memory_bytes=int(memory.get("usage") or 0),
        inactive_file_bytes=inactive_file(memory.get("stats") or {}),
        rx_bytes=sum(int(n.get("rx_bytes") or 0) for n in networks),
        tx_bytes=sum(int(n.get("tx_bytes") or 0) for n in networks),
        read_bytes=sum(int(e["value"]) for e in io if str(e.get("op")).lower() == "read"),
        write_bytes=sum(int(e["value"]) for e in io if str(e.get("op")).lower() == "write"),
        source="stats",
    )


class StatsStreams:
    """One persistent stats stream per container, each on its own daemon thread, keeping the
    latest sample; `follow` opens streams for new containers and closes those no longer wanted.

    A stream's thread owns its HTTP response and closes it however the stream ends: refused
    (a container that is gone), ended by the engine, a stopped container's first empty
    document, or closed here (`follow`, `close`), which ends the thread at its next read."""

    def __init__(self, api: Any) -> None:
        self._api = api
        self._lock = threading.Lock()
        self._responses: dict[str, Any] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._latest: dict[str, RawUsage] = {}
        self._closed = False

    def follow(self, container_ids: Iterable[str]) -> None:
        wanted = set(container_ids)
        with self._lock:
            for cid in (self._threads.keys() | self._latest.keys()) - wanted:
                self._stop_locked(cid)
            if self._closed:
                return
            for cid in wanted - self._threads.keys():
                thread = threading.Thread(
                    target=self._run, args=(cid,), name=f"stats-{cid[:12]}", daemon=True
                )
                self._threads[cid] = thread
                thread.start()

    def latest(self, container_ids: Iterable[str]) -> dict[str, RawUsage]:
        with self._lock:
            return {cid: self._latest[cid] for cid in container_ids if cid in self._latest}

    def close(self) -> None:
        """Close every stream; no stream opens afterwards."""
        with self._lock:
            self._closed = True
            for cid in self._threads.keys() | self._latest.keys():
                self._stop_locked(cid)

    def _stop_locked(self, cid: str) -> None:
        self._threads.pop(cid, None)
        self._latest.pop(cid, None)
        _close(self._responses.pop(cid, None))

    def _owns_locked(self, cid: str) -> bool:
        """Whether the calling thread is `cid`'s current stream (not one stopped or replaced)."""
        return self._threads.get(cid) is threading.current_thread()

    def _run(self, cid: str) -> None:
        response = None
        try:
            url = self._api._url("/containers/{0}/stats", cid)
            response = self._api._get(url, params={"stream": True}, stream=True)
            with self._lock:
                if not self._owns_locked(cid):
                    return
                self._responses[cid] = response
            if response.status_code != 200:
                log.debug("stats stream of %s refused: HTTP %s", cid[:12], response.status_code)
                return
            for line in response.iter_lines():
                if not line:
                    continue
                sample = parse_stats(json.loads(line))
                with self._lock:
                    if not self._owns_locked(cid) or sample is None:
                        # Stopped or replaced here, or the container stopped: the engine
                        # sends empty documents until it is removed.
                        return
                    self._latest[cid] = sample
        except Exception as exc:
            log.debug("stats stream of %s ended: %s", cid[:12], exc)
        finally:
            with self._lock:
                if self._owns_locked(cid):
                    # The stream ended by itself: reopen on demand.
                    self._threads.pop(cid, None)
                    self._responses.pop(cid, None)
            _close(response)


def _close(response: Any) -> None:
    if response is not None:
        with contextlib.suppress(Exception):
            response.close()


class UsageReader:
    """Chooses the source per container (`auto`, `cgroup` or `stats`) and cross-checks."""

    def __init__(
        self,
        api: Any,
        source: str = "auto",
        local: bool = True,
        cgroups: CgroupReader | None = None,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"usage source must be one of {', '.join(SOURCES)}")
        self._api = api
        self.source = source
        self.local = local
        self.cgroups = cgroups or CgroupReader()
        self.streams = StatsStreams(api)
        self._lock = threading.Lock()
        """Guards `_paths` and `_checked`: `read` runs on the runtime's pool threads while the
        cross-check thread locates its container."""
        self._paths: dict[str, CgroupPaths | None] = {}
        self._checked = False
        self.cgroup_trusted = True
        """False after a cross-check found the cgroup disagreeing with the stats API."""

    def _use_cgroup(self) -> bool:
        if self.source == "stats":
            return False
        if self.source == "cgroup":
            return True
        return self.local and self.cgroup_trusted

    def _locate(self, cid: str) -> CgroupPaths | None:
        with self._lock:
            if cid in self._paths:
                return self._paths[cid]
        mode = ""
        with contextlib.suppress(Exception):
            mode = self._api.inspect_container(cid)["HostConfig"].get("NetworkMode") or ""
        paths = self.cgroups.locate(cid, own_network=not mode.startswith("container:"))
        with self._lock:
            self._paths[cid] = paths
        return paths

    def _claim_cross_check(self) -> bool:
        """True once: for the first container read from its cgroup in `auto`."""
        with self._lock:
            if self._checked or self.source != "auto":
                return False
            self._checked = True
            return True

    def read(self, container_ids: Sequence[str]) -> dict[str, RawUsage]:
        out: dict[str, RawUsage] = {}
        streamed: list[str] = []
        for cid in container_ids:
            paths = self._locate(cid) if self._use_cgroup() else None
            if paths is None:
                if self.source != "cgroup":
                    streamed.append(cid)
                continue
            sample = self.cgroups.read(paths)
            if sample is not None:
                out[cid] = sample
                if self._claim_cross_check():
                    threading.Thread(
                        target=self.cross_check, args=(cid,), name="usage-check", daemon=True
                    ).start()
        wanted = set(container_ids)
        with self._lock:
            for cid in [c for c in self._paths if c not in wanted]:
                del self._paths[cid]
        self.streams.follow(streamed)
        out.update(self.streams.latest(streamed))
        return out

    def cross_check(self, cid: str) -> bool:
        """Compare one container's cgroup counters with a stats-API sample taken between two
        cgroup readings; on disagreement warn and, in `auto`, use the stats API from now on."""
        paths = self._locate(cid)
        before = self.cgroups.read(paths) if paths else None
        try:
            doc = self._api.stats(cid, stream=False, one_shot=True)
        except Exception as exc:
            log.info("usage cross-check skipped: stats API failed: %s", exc)
            return True
        after = self.cgroups.read(paths) if paths else None
        stats = parse_stats(doc)
        if before is None or after is None or stats is None:
            return True
        slack = 50_000_000  # 50 ms of CPU: the stats sample and our reads are not atomic
        cpu_ok = before.cpu_ns - slack <= stats.cpu_ns <= after.cpu_ns + slack
        lo = min(before.memory_bytes, after.memory_bytes)
        hi = max(before.memory_bytes, after.memory_bytes)
        margin = max(8 * 1024 * 1024, 0.2 * hi)
        memory_ok = lo - margin <= stats.memory_bytes <= hi + margin
        if cpu_ok and memory_ok:
            log.info("usage cross-check: cgroup counters agree with the stats API")
            return True
        log.warning(
            "usage cross-check: the cgroup of %s disagrees with the stats API (cpu %d..%d ns vs "
            "%d ns, memory %d..%d B vs %d B); using the stats API",
            cid[:12],
            before.cpu_ns,
            after.cpu_ns,
            stats.cpu_ns,
            lo,
            hi,
            stats.memory_bytes,
        )
        if self.source == "auto":
            self.cgroup_trusted = False
        return False

    def close(self) -> None:
        self.streams.close()
