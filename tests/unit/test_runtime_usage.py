"""Reading counters: cgroup v1/v2 file layouts (in a temporary tree) and stats-API documents."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from miniecs.runtime.usage import CgroupReader, StatsStreams, UsageReader, parse_stats

CID = "ab" * 32
NET_DEV = """Inter-|   Receive |  Transmit
 face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop
    lo: 999999 10 0 0 0 0 0 0 999999 10 0 0 0 0 0 0
  eth0: 1500 12 0 0 0 0 0 0 700 6 0 0 0 0 0 0
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def proc_tree(tmp_path: Path) -> Path:
    write(tmp_path / "proc" / "4242" / "net" / "dev", NET_DEV)
    return tmp_path / "proc"


@pytest.mark.parametrize("layout", ["docker/{id}", "system.slice/docker-{id}.scope"])
def test_cgroup_v1(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "cgroup"
    suffix = layout.format(id=CID)
    write(root / "cpuacct" / suffix / "cpuacct.usage", "123456789\n")
    write(root / "cpuacct" / suffix / "cgroup.procs", "4242\n4300\n")
    write(root / "memory" / suffix / "memory.usage_in_bytes", "10485760\n")
    write(
        root / "memory" / suffix / "memory.stat",
        "cache 4194304\ninactive_file 1\ntotal_inactive_file 2097152\n",
    )
    write(
        root / "blkio" / suffix / "blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Total 4608\n8:16 Read 4\nTotal 4612\n",
    )
    reader = CgroupReader(root, proc_tree(tmp_path))
    assert reader.version == 1
    paths = reader.locate(CID)
    assert paths is not None
    usage = reader.read(paths)
    assert usage is not None
    assert usage.source == "cgroup" and usage.system_ns is None
    assert usage.cpu_ns == 123456789
    assert (usage.memory_bytes, usage.inactive_file_bytes) == (10485760, 2097152)
    assert (usage.read_bytes, usage.write_bytes) == (4100, 512)
    assert (usage.rx_bytes, usage.tx_bytes) == (1500, 700)  # loopback left out
    shared = reader.locate(CID, own_network=False)
    assert shared is not None
    usage = reader.read(shared)
    assert usage is not None and (usage.rx_bytes, usage.tx_bytes) == (0, 0)
    assert reader.locate("cd" * 32) is None


@pytest.mark.parametrize("layout", ["docker/{id}", "system.slice/docker-{id}.scope"])
def test_cgroup_v2(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "cgroup"
    write(root / "cgroup.controllers", "cpu memory io\n")
    base = root / layout.format(id=CID)
    write(base / "cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n")
    write(base / "cgroup.procs", "4242\n")
    write(base / "memory.current", "8388608\n")
    write(base / "memory.stat", "anon 100\nfile 300\ninactive_file 1048576\n")
    write(base / "io.stat", "8:0 rbytes=100 wbytes=20 rios=1 wios=1\n8:16 rbytes=1 wbytes=2\n")
    reader = CgroupReader(root, proc_tree(tmp_path))
    assert reader.version == 2
    paths = reader.locate(CID)
    assert paths is not None
    usage = reader.read(paths)
    assert usage is not None
    assert usage.cpu_ns == 2_500_000
    assert (usage.memory_bytes, usage.inactive_file_bytes) == (8388608, 1048576)
    assert (usage.read_bytes, usage.write_bytes) == (101, 22)


def test_cgroup_without_process_reads_nothing(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    write(root / "cpuacct" / "docker" / CID / "cpuacct.usage", "1\n")
    write(root / "cpuacct" / "docker" / CID / "cgroup.procs", "")
    write(root / "memory" / "docker" / CID / "memory.usage_in_bytes", "1\n")
    reader = CgroupReader(root, proc_tree(tmp_path))
    paths = reader.locate(CID)
    assert paths is not None
    assert reader.read(paths) is None


def stats_doc(**memory_stats: int) -> dict[str, Any]:
    return {
        "read": "2026-11-28T04:59:01.123456789Z",
        "cpu_stats": {
            "cpu_usage": {"total_usage": 5_000_000_000, "percpu_usage": [1, 2]},
            "system_cpu_usage": 90_000_000_000,
            "online_cpus": 2,
        },
        "memory_stats": {"usage": 20_000_000, "stats": memory_stats},
        "networks": {"eth0": {"rx_bytes": 300, "tx_bytes": 200}, "eth1": {"rx_bytes": 1}},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096},
                {"major": 8, "minor": 0, "op": "Write", "value": 100},
                {"major": 8, "minor": 0, "op": "Total", "value": 4196},
            ]
        },
    }


def test_parse_stats_v1_and_v2() -> None:
    v1 = parse_stats(stats_doc(total_inactive_file=3_000_000, inactive_file=1))
    assert v1 is not None
    assert v1.source == "stats"
    assert (v1.cpu_ns, v1.system_ns, v1.online_cpus) == (5_000_000_000, 90_000_000_000, 2)
    assert (v1.memory_bytes, v1.inactive_file_bytes) == (20_000_000, 3_000_000)
    assert (v1.rx_bytes, v1.tx_bytes, v1.read_bytes, v1.write_bytes) == (301, 200, 4096, 100)
    assert v1.read_ns % 1_000_000_000 == 123456789
    v2 = parse_stats(stats_doc(inactive_file=2_000_000))
    assert v2 is not None and v2.inactive_file_bytes == 2_000_000


def test_parse_stats_of_a_stopped_container_is_none() -> None:
    assert parse_stats({"read": "0001-01-01T00:00:00Z", "cpu_stats": {"cpu_usage": {}}}) is None


class StatsApi:
    """Answers the one-shot stats call of a cross-check with a fixed document."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def inspect_container(self, cid: str) -> dict[str, Any]:
        return {"HostConfig": {"NetworkMode": "miniecs-net"}}

    def stats(self, cid: str, stream: bool, one_shot: bool) -> dict[str, Any]:
        return self.doc


@pytest.mark.parametrize(
    ("stats_cpu", "stats_memory", "agrees"),
    [(123456789, 10485760, True), (9 * 10**12, 10485760, False), (123456789, 900 * 2**20, False)],
)
def test_cross_check_falls_back_to_stats_on_disagreement(
    tmp_path: Path, stats_cpu: int, stats_memory: int, agrees: bool
) -> None:
    test_cgroup_v1(tmp_path, "docker/{id}")
    doc = stats_doc()
    doc["cpu_stats"]["cpu_usage"]["total_usage"] = stats_cpu
    doc["memory_stats"]["usage"] = stats_memory
    cgroups = CgroupReader(tmp_path / "cgroup", tmp_path / "proc")
    reader = UsageReader(StatsApi(doc), "auto", cgroups=cgroups)
    assert reader.cross_check(CID) is agrees
    assert reader.cgroup_trusted is agrees


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, cgroup, stats"):
        UsageReader(StatsApi({}), "proc")


class StatsResponse:
    """A streaming stats response: lines are fed by the test; `close` ends the iteration, as
    closing a real response makes its reader's next read fail."""

    def __init__(self, status_code: int = 200) -> None:
        self.status_code = status_code
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.closed = threading.Event()

    def iter_lines(self) -> Iterator[bytes]:
        while (line := self.lines.get(timeout=5)) is not None:
            yield line

    def close(self) -> None:
        self.closed.set()
        self.lines.put(None)


class StreamingApi:
    """Docker's low-level client as far as `StatsStreams` uses it: every stats request gets
    the next prepared response, optionally after `gate` opens."""

    def __init__(self, *responses: StatsResponse) -> None:
        self.responses = list(responses)
        self.threads: list[threading.Thread] = []
        self.gate: threading.Event | None = None

    def _url(self, template: str, cid: str) -> str:
        return template.format(cid)

    def _get(self, url: str, params: dict[str, Any], stream: bool) -> StatsResponse:
        assert url == f"/containers/{CID}/stats" and params == {"stream": True} and stream
        self.threads.append(threading.current_thread())
        gate, self.gate = self.gate, None
        response = self.responses.pop(0)
        if gate is not None:
            gate.wait(5)
        return response

    def ended(self) -> bool:
        for thread in self.threads:
            thread.join(5)
        return all(t.daemon and not t.is_alive() for t in self.threads)


def sample_line(total_usage: int = 5_000_000_000) -> bytes:
    doc = stats_doc()
    doc["cpu_stats"]["cpu_usage"]["total_usage"] = total_usage
    return json.dumps(doc).encode()


def wait_for(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_stream_keeps_the_latest_sample_and_closes_when_no_longer_wanted() -> None:
    response = StatsResponse()
    api = StreamingApi(response)
    streams = StatsStreams(api)
    streams.follow([CID])
    response.lines.put(b"")
    response.lines.put(sample_line(7))
    wait_for(lambda: CID in streams.latest([CID]))
    assert streams.latest([CID])[CID].cpu_ns == 7
    streams.follow([CID])  # still wanted: the same stream
    assert len(api.threads) == 1 and not response.closed.is_set()
    streams.follow([])
    assert response.closed.is_set() and streams.latest([CID]) == {}
    assert api.ended()


def test_a_refused_stream_is_closed_and_reopened_on_demand() -> None:
    refused, accepted = StatsResponse(404), StatsResponse()
    api = StreamingApi(refused, accepted)
    streams = StatsStreams(api)
    streams.follow([CID])
    assert refused.closed.wait(5) and api.ended()
    streams.follow([CID])
    accepted.lines.put(sample_line())
    wait_for(lambda: CID in streams.latest([CID]))
    streams.close()
    assert accepted.closed.is_set() and api.ended()


@pytest.mark.parametrize(
    "end",
    [None, json.dumps({"read": "0001-01-01T00:00:00Z", "cpu_stats": {}}).encode()],
    ids=["engine-ends-stream", "container-stopped"],
)
def test_a_stream_that_ends_closes_its_response_and_thread(end: bytes | None) -> None:
    response = StatsResponse()
    api = StreamingApi(response)
    streams = StatsStreams(api)
    streams.follow([CID])
    response.lines.put(sample_line())
    response.lines.put(end)
    assert response.closed.wait(5) and api.ended()
    streams.follow([])
    assert streams.latest([CID]) == {}


def test_a_replaced_stream_closes_its_late_response_and_leaves_the_new_one() -> None:
    late, current = StatsResponse(), StatsResponse()
    api = StreamingApi(late, current)
    api.gate = gate = threading.Event()
    streams = StatsStreams(api)
    streams.follow([CID])  # the first request hangs until `gate` opens
    wait_for(lambda: len(api.threads) == 1)
    streams.follow([])
    streams.follow([CID])
    wait_for(lambda: len(api.threads) == 2)
    gate.set()
    assert late.closed.wait(5)
    api.threads[0].join(5)
    assert not api.threads[0].is_alive()
    current.lines.put(sample_line(11))
    wait_for(lambda: CID in streams.latest([CID]))
    assert streams.latest([CID])[CID].cpu_ns == 11 and not current.closed.is_set()
    streams.close()
    assert current.closed.is_set() and api.ended()


def test_no_stream_opens_after_close() -> None:
    api = StreamingApi(StatsResponse())
    streams = StatsStreams(api)
    streams.close()
    streams.follow([CID])
    assert api.threads == [] and streams.latest([CID]) == {}


class RacingPaths(dict[str, Any]):
    """Runs `racer` while the first key is being iterated: it mutates the dict from another
    thread exactly when an unguarded iteration would fail."""

    racer: Callable[[], None] | None = None

    def __iter__(self) -> Iterator[str]:
        for key in super().__iter__():
            if self.racer is not None:
                racer, self.racer = self.racer, None
                racer()
            yield key


def test_cross_check_locating_while_read_prunes_does_not_break_the_round(
    tmp_path: Path,
) -> None:
    test_cgroup_v1(tmp_path, "docker/{id}")
    cgroups = CgroupReader(tmp_path / "cgroup", tmp_path / "proc")
    reader = UsageReader(StatsApi(stats_doc()), "cgroup", cgroups=cgroups)
    assert reader.read([CID])[CID].cpu_ns == 123456789
    paths = RacingPaths(reader._paths)
    reader._paths = paths
    checker = threading.Thread(target=reader.cross_check, args=("cd" * 32,), daemon=True)

    def race() -> None:
        checker.start()
        checker.join(0.2)  # unguarded, the check's locate lands now; guarded, it waits

    paths.racer = race
    assert reader.read([]) == {}
    checker.join(5)
    assert not checker.is_alive()
    assert list(reader._paths) == ["cd" * 32]
