"""`miniecs top`: the table shows each task's own figures under its service's average, and the
client reads a server over HTTP (here a stub on loopback)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import pytest
from rich.console import Console

from miniecs.top import TopError, bar, fetch, render, run


def task(task_id: str, cpu: float | None, memory: float | None) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "lastStatus": "RUNNING" if cpu is not None else "PENDING",
        "cpuUtilization": cpu,
        "memoryUtilization": memory,
        "containers": [
            {"containerName": "app", "cpuUtilization": cpu, "memoryUtilization": memory}
        ],
    }


HOT = "0123456789abcdef0123456789abcdef"
VIEW: dict[str, Any] = {
    "now": 1_700_000_000.0,
    "clusters": [
        {
            "clusterName": "demo",
            "containerInsights": "enhanced",
            "services": [
                {
                    "serviceName": "web",
                    "desiredCount": 3,
                    "runningCount": 2,
                    "pendingCount": 1,
                    "cpuUtilization": 50.0,
                    "memoryUtilization": 10.0,
                    "tasks": [
                        task(HOT, 99.0, 12.0),
                        task("idle", 1.0, 8.0),
                        task("new", None, None),
                    ],
                }
            ],
            "tasks": [task("oneoff", 5.0, 3.0)],
        }
    ],
}


def text(view: dict[str, Any]) -> str:
    console = Console(file=StringIO(), width=160, record=True)
    console.print(render(view))
    return console.export_text()


def test_table_puts_each_tasks_own_figures_under_the_service_average() -> None:
    lines = text(VIEW).splitlines()
    row = {line.split()[0]: line for line in lines if line.strip()}
    assert "3/2/1" in row["web"] and "50.0%" in row["web"]
    assert "99.0%" in row[HOT] and "app cpu 99% mem 12%" in row[HOT]
    assert "1.0%" in row["idle"]
    assert "PENDING" in row["new"] and "%" not in row["new"]
    assert "5.0%" in row["oneoff"]
    assert "containerInsights=enhanced" in row["demo"]
    assert "no clusters" in text({"now": 0, "clusters": []})


def test_bar_is_proportional_and_dashes_without_a_sample() -> None:
    assert bar(50.0, 10).plain == "█████░░░░░  50.0%"
    assert bar(150.0, 4).plain.startswith("████")
    assert bar(None, 4).plain.strip() == "-"


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(VIEW).encode() if self.path == "/_miniecs/usage" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_once_json_prints_the_servers_view(server: str) -> None:
    out = StringIO()
    run(server + "/", Console(file=out), once=True, output="json")
    assert json.loads(out.getvalue()) == VIEW


def test_once_table_is_wide_enough_for_whole_task_ids_in_a_pipe(server: str) -> None:
    narrow = StringIO()
    Console(file=narrow, width=80).print(render(VIEW))
    assert HOT not in narrow.getvalue()  # an 80-column console cuts the id...
    out = StringIO()
    run(server, Console(file=out, width=80), once=True, output="table")
    assert HOT in out.getvalue() and "3/2/1" in out.getvalue()  # ...a pipe gets room


def test_unreachable_server_is_a_top_error() -> None:
    with pytest.raises(TopError, match="cannot read"):
        fetch("http://127.0.0.1:9", timeout=2)
