"""The sample workload (workload/app.py), run as a real subprocess on a free loopback port."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

APP = Path(__file__).resolve().parents[2] / "workload" / "app.py"
TASK_ARN = "arn:aws:ecs:us-east-1:000000000000:task/default/0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Workload:
    proc: subprocess.Popen[bytes]
    port: int

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def get(self, path: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
        conn = self.conn()
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process, from /proc (clock-tick resolution)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


def start_workload(**env: str) -> Workload:
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PORT": "0",
        "WORKLOAD_HOST": "127.0.0.1",
        "MINIECS_TASK_ARN": TASK_ARN,
        "MINIECS_TASK_ID": "0123456789abcdef",
        "MINIECS_CONTAINER_NAME": "web",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-u", str(APP)],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline().decode() if ready else ""
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if match is None:
        stop_process(proc)
        pytest.fail(f"workload did not start: {line!r}")
    return Workload(proc, int(match.group(1)))


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def workload() -> Iterator[Workload]:
    wl = start_workload()
    try:
        yield wl
    finally:
        stop_process(wl.proc)


def read_response(stream: Any) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response from a buffered socket file: status, lowercased headers, body."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


def exchange(wl: Workload, raw: bytes) -> tuple[list[tuple[int, dict[str, str], bytes]], bytes]:
    """Send raw bytes, read every response until the server closes; return them and leftovers."""
    with wl.connect() as sock:
        sock.sendall(raw)
        with sock.makefile("rb") as stream:
            responses = []
            while stream.peek(1):
                responses.append(read_response(stream))
            return responses, stream.read()


def test_health(workload: Workload) -> None:
    assert workload.get("/health") == (200, {"status": "ok"})


def test_work_burns_cpu_and_reports_identity(workload: Workload) -> None:
    status, first = workload.get("/work?ms=0")
    assert status == 200
    assert first == {
        "task": TASK_ARN,
        "taskId": "0123456789abcdef",
        "container": "web",
        "ip": "127.0.0.1",
        "requests": 1,
        "ms": 0,
    }
    cpu_before = workload.cpu_seconds()
    started = time.monotonic()
    status, body = workload.get("/work?ms=200")
    elapsed = time.monotonic() - started
    cpu_used = workload.cpu_seconds() - cpu_before
    assert status == 200
    assert body["ms"] == 200
    assert body["requests"] == 2
    assert elapsed >= 0.2
    # Tick accounting can be off by a tick or two either way; the request itself costs ~1 ms.
    assert 0.17 <= cpu_used <= 0.5, cpu_used
    assert workload.get("/")[1]["requests"] == 3


def test_work_validates_ms(workload: Workload) -> None:
    assert workload.get("/work?ms=abc")[0] == 400
    assert workload.get("/work?ms=-5")[0] == 400
    assert workload.get("/work?ms=1.5")[1]["ms"] == 1.5


def test_keep_alive_reuses_one_connection(workload: Workload) -> None:
    conn = workload.conn()
    try:
        ports = set()
        for i in range(5):
            conn.request("GET", "/work")
            resp = conn.getresponse()
            assert resp.status == 200
            assert json.loads(resp.read())["requests"] == i + 1
            assert conn.sock is not None
            ports.add(conn.sock.getsockname()[1])
        assert len(ports) == 1
    finally:
        conn.close()
    _, stats = workload.get("/stats")
    assert stats["paths"] == {"/work": 5, "/stats": 1}
    assert stats["work"] == 5


def test_pipelined_requests_answer_in_order(workload: Workload) -> None:
    raw = (
        b"GET /work?ms=20 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /work HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\n\r\n"
        b"GET /work HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    responses, rest = exchange(workload, raw)
    assert [r[0] for r in responses] == [200, 405, 200, 405, 200]
    assert json.loads(responses[0][2])["requests"] == 1
    assert responses[1][1]["allow"] == "GET"
    assert json.loads(responses[4][2])["requests"] == 2
    assert responses[4][1]["connection"] == "close"
    assert rest == b""


def test_request_split_across_packets(workload: Workload) -> None:
    with workload.connect() as sock, sock.makefile("rb") as stream:
        for part in (b"GET /hea", b"lth HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
            sock.sendall(part)
            time.sleep(0.02)
        assert read_response(stream)[0] == 200


def test_not_found_and_method_not_allowed(workload: Workload) -> None:
    assert workload.get("/nope") == (404, {"error": "not found"})
    assert workload.get("/nope", method="POST")[0] == 404
    assert workload.get("/work", method="DELETE")[0] == 405
    assert workload.get("/stats", method="PUT")[0] == 405


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"GET /health HTTP/2.0\r\n\r\n",
        b"GET /health HTTP/1.1\r\nbad header\r\n\r\n",
        b"GET /health HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
)
def test_garbage_gets_400_and_close(workload: Workload, raw: bytes) -> None:
    responses, rest = exchange(workload, raw + b"GET /health HTTP/1.1\r\n\r\n")
    assert [r[0] for r in responses] == [400]
    assert responses[0][1]["connection"] == "close"
    assert rest == b""
    assert workload.get("/health")[0] == 200  # the server itself is fine


def test_http10_closes_unless_keep_alive(workload: Workload) -> None:
    responses, _ = exchange(workload, b"GET /health HTTP/1.0\r\n\r\nGET /health HTTP/1.0\r\n\r\n")
    assert len(responses) == 1
    assert responses[0][1]["connection"] == "close"
    raw = b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\n"
    responses, _ = exchange(workload, raw)
    assert [r[1]["connection"] for r in responses] == ["keep-alive", "close"]


def test_failing_health_file(tmp_path: Path) -> None:
    flag = tmp_path / "unhealthy"
    wl = start_workload(WORKLOAD_FAIL_HEALTH_FILE=str(flag))
    try:
        assert wl.get("/health")[0] == 200
        flag.touch()
        assert wl.get("/health") == (503, {"status": "unhealthy"})
        flag.unlink()
        assert wl.get("/health")[0] == 200
    finally:
        stop_process(wl.proc)


def test_identity_falls_back_to_hostname() -> None:
    wl = start_workload(MINIECS_TASK_ARN="", MINIECS_TASK_ID="", MINIECS_CONTAINER_NAME="")
    try:
        body = wl.get("/work")[1]
        host = socket.gethostname()
        assert (body["task"], body["taskId"], body["container"]) == (host, host, host)
    finally:
        stop_process(wl.proc)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero_quickly_with_idle_connection(workload: Workload, sig: int) -> None:
    conn = workload.conn()
    try:
        conn.request("GET", "/health")
        conn.getresponse().read()  # leaves an idle keep-alive connection open
        started = time.monotonic()
        workload.proc.send_signal(sig)
        assert workload.proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 1.0
    finally:
        conn.close()


def test_sigterm_lets_in_flight_request_finish(workload: Workload) -> None:
    with workload.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(b"GET /work?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.05)  # the request is being served (burning CPU) now
        workload.proc.send_signal(signal.SIGTERM)
        status, _, body = read_response(stream)
        assert status == 200
        assert json.loads(body)["ms"] == 300
        assert stream.read() == b""  # then the now idle connection is closed
    assert workload.proc.wait(timeout=5) == 0


def test_sigterm_waits_for_partial_request(workload: Workload) -> None:
    with workload.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(b"POST /work HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
        time.sleep(0.05)
        workload.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        assert workload.proc.poll() is None  # still waiting for the rest of the body
        sock.sendall(b"cd")
        status, headers, _ = read_response(stream)
        assert (status, headers["connection"]) == (405, "close")
    assert workload.proc.wait(timeout=5) == 0
