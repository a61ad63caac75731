"""The load generator (workload/load.py), run as a subprocess against real workload processes."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import select
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

WORKLOAD = Path(__file__).resolve().parents[2] / "workload"
APP = WORKLOAD / "app.py"
LOAD = WORKLOAD / "load.py"


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    task_id: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/work"


def start_workload(task_id: str) -> Server:
    """Start workload/app.py on a free loopback port (as tests/unit/test_workload.py does)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PORT": "0",
        "WORKLOAD_HOST": "127.0.0.1",
        "MINIECS_TASK_ARN": f"arn:aws:ecs:us-east-1:000000000000:task/default/{task_id}",
        "MINIECS_TASK_ID": task_id,
        "MINIECS_CONTAINER_NAME": "web",
    }
    proc = subprocess.Popen(
        [sys.executable, "-u", str(APP)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline().decode() if ready else ""
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if match is None:
        stop_process(proc)
        pytest.fail(f"workload did not start: {line!r}")
    return Server(proc, int(match.group(1)), task_id)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    started: list[Server] = []
    try:
        started.append(start_workload("aaaaaaaaaaaaaaaa"))
        started.append(start_workload("bbbbbbbbbbbbbbbb"))
        yield started[0], started[1]
    finally:
        for server in started:
            stop_process(server.proc)


def run_load(*args: str, timeout: float = 10) -> tuple[int, str, str]:
    """Run load.py to completion (killed after ``timeout``); return exit code, stdout, stderr."""
    proc = subprocess.run(
        [sys.executable, str(LOAD), *args], capture_output=True, text=True, timeout=timeout
    )
    return proc.returncode, proc.stdout, proc.stderr


def run_json(*args: str, timeout: float = 10) -> dict[str, Any]:
    code, out, err = run_load(*args, "--json", timeout=timeout)
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("workload_load", LOAD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_closed_loop_request_limit(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    report = run_json(a.url, "--requests", "500", "--connections", "4")
    assert report["mode"] == "closed"
    assert report["stoppedBy"] == "requests"
    assert (report["requests"], report["responses"], report["ok"]) == (500, 500, 500)
    assert report["errors"] == 0
    assert set(report["errorKinds"]) == {"connect", "timeout", "reset", "protocol", "status"}
    assert report["statuses"] == {"200": 500}
    assert report["tasks"] == {a.task_id: 500}
    assert sum(report["tasks"].values()) == 500
    assert report["urls"] == {a.url: {"requests": 500, "responses": 500, "errors": 0}}
    latency = report["latencyMs"]
    assert set(latency) == {"p50", "p90", "p99", "max", "mean"}
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert report["rps"] > 0
    assert report["elapsed"] < 5


def test_open_loop_rate(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    report = run_json(a.url, "--duration", "1", "--rate", "200", "--connections", "4")
    assert report["mode"] == "open"
    assert report["stoppedBy"] == "duration"
    assert 140 <= report["requests"] <= 260, report
    assert report["errors"] == 0
    assert 0.9 <= report["elapsed"] <= 1.5


def test_connections_spread_over_urls(servers: tuple[Server, Server]) -> None:
    a, b = servers
    report = run_json(a.url, b.url, "--connections", "2", "--requests", "400")
    assert report["responses"] == 400
    assert set(report["tasks"]) == {a.task_id, b.task_id}
    assert all(n > 0 for n in report["tasks"].values())
    assert report["urls"][a.url]["responses"] == report["tasks"][a.task_id]
    assert report["urls"][b.url]["responses"] == report["tasks"][b.task_id]


def test_single_connection_stays_pinned(servers: tuple[Server, Server]) -> None:
    a, b = servers
    report = run_json(a.url, b.url, "--connections", "1", "--requests", "200")
    assert report["tasks"] == {a.task_id: 200}
    assert report["urls"][b.url]["requests"] == 0


def test_ms_burns_cpu_per_request(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    report = run_json(a.url, "--ms", "20", "--requests", "5")
    assert report["ms"] == 20
    assert report["latencyMs"]["p50"] >= 19


def test_request_line_and_host_header() -> None:
    load = load_module()
    target = load.parse_target("http://127.0.0.1:8080/work?x=1", 5.0)
    assert target.request.startswith(b"GET /work?x=1&ms=5 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    target = load.parse_target("http://example", 1.5)
    assert (target.host, target.port) == ("example", 80)
    assert target.request.startswith(b"GET /?ms=1.5 HTTP/1.1\r\nHost: example\r\n")


def test_dead_target_counts_connect_errors() -> None:
    url = f"http://127.0.0.1:{free_port()}/work"
    started = time.monotonic()
    report = run_json(url, "--duration", "1", "--connections", "2")
    assert time.monotonic() - started < 4
    assert report["stoppedBy"] == "duration"
    assert report["responses"] == 0
    assert report["errorKinds"]["connect"] == report["errors"] > 0
    assert report["latencyMs"] is None
    assert report["tasks"] == {}


def test_sigterm_still_reports(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    proc = subprocess.Popen(
        [sys.executable, str(LOAD), a.url, "--duration", "10", "--json", "--progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 10)
        assert ready
        assert proc.stderr.readline().startswith(b"load: 1 target(s)")  # signals handled now
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=5)
        assert proc.returncode == 0
        report = json.loads(out)
        assert report["stoppedBy"] == "signal"
        assert report["requests"] > 0
        assert report["elapsed"] < 5
    finally:
        stop_process(proc)


def test_text_report(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    code, out, _ = run_load(a.url, "--requests", "50", "--connections", "2")
    assert code == 0
    assert "requests 50" in out
    assert re.search(r"latency\s+p50 [\d.]+ ms", out)
    assert re.search(rf"{a.task_id}\s+50\s+100\.0%", out)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["ftp://127.0.0.1/"],
        ["http://127.0.0.1:1/", "--duration", "0"],
        ["http://127.0.0.1:1/", "--duration", "3601"],
        ["http://127.0.0.1:1/", "--connections", "0"],
        ["http://127.0.0.1:1/", "--rate", "fast"],
        ["http://127.0.0.1:1/", "--ms", "-1"],
        ["http://127.0.0.1:1/", "--requests", "1.5"],
    ],
)
def test_bad_arguments_exit_2(args: list[str]) -> None:
    code, out, err = run_load(*args)
    assert code == 2
    assert out == ""
    assert "error" in err


class CannedHandler(socketserver.StreamRequestHandler):
    """Answers each request with the server's next canned response; closes after ``per_conn``."""

    server: CannedServer

    def handle(self) -> None:
        for _ in range(self.server.per_conn):
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                pass
            if not line:
                return
            self.wfile.write(self.server.next_response())
        # then close without having said "Connection: close"


class CannedServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, responses: list[bytes], per_conn: int) -> None:
        super().__init__(("127.0.0.1", 0), CannedHandler)
        self.responses = responses
        self.per_conn = per_conn
        self.count = 0
        self.lock = threading.Lock()

    def next_response(self) -> bytes:
        with self.lock:
            self.count += 1
            return self.responses[(self.count - 1) % len(self.responses)]


@pytest.fixture
def canned() -> Iterator[list[CannedServer]]:
    made: list[CannedServer] = []
    try:
        yield made
    finally:
        for server in made:
            server.shutdown()
            server.server_close()


def serve(made: list[CannedServer], responses: list[bytes], per_conn: int) -> str:
    server = CannedServer(responses, per_conn)
    made.append(server)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/work"


def test_chunked_bodies_and_bad_statuses(canned: list[CannedServer]) -> None:
    body = b'{"task":"arn:x","taskId":"chunky"}'
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x;ext=1\r\n%s\r\n" % (10, body[:10])
        + b"%x\r\n%s\r\n" % (len(body) - 10, body[10:])
        + b"0\r\nX-Trailer: y\r\n\r\n"
    )
    unavailable = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}"
    url = serve(canned, [chunked, unavailable], per_conn=1000)
    report = run_json(url, "--requests", "40", "--connections", "1")
    assert (report["requests"], report["responses"], report["ok"]) == (40, 40, 20)
    assert report["statuses"] == {"200": 20, "503": 20}
    assert report["errorKinds"]["status"] == report["errors"] == 20
    assert report["tasks"] == {"chunky": 20}


def test_keep_alive_closed_by_server_is_retried(canned: list[CannedServer]) -> None:
    ok = b'HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{"taskId":"t1"}'
    url = serve(canned, [ok], per_conn=1)
    report = run_json(url, "--requests", "30", "--connections", "2")
    assert report["errors"] == 0
    assert report["tasks"] == {"t1": 30}
