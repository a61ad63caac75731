"""Bad input for `miniecs demo` and `miniecs server`: no Docker engine and a port in use give a
clear message, and Ctrl-C halfway through the demo removes everything it created."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import docker_client, remove_by_label

pytestmark = pytest.mark.integration


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "miniecs", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def test_no_docker_engine_is_a_clear_message() -> None:
    proc = demo(env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "no Docker engine answers" in out and "start Docker" in out
    assert "Traceback" not in out


def test_port_in_use_is_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        state = str(tmp_path / "state")
        done = subprocess.run(
            [sys.executable, "-m", "miniecs", "server", "--port", str(port), "--state-dir", state],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
            check=False,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("moment", ["first task", "load"])
def test_ctrl_c_halfway_removes_everything(images: None, moment: str) -> None:
    """SIGINT (what Ctrl-C sends) once the first task container exists, or once the load
    generator runs; the demo exits 130 and nothing labelled with its instance remains."""
    proc = demo("--clock-speed", "10", "--load-seconds", "20")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    instance = ""
    client = docker_client()
    try:
        deadline = time.monotonic() + 50
        seen: list[object] = []
        while time.monotonic() < deadline and proc.poll() is None:
            if not instance:
                found = re.search(r"instance (\w+)\)", "".join(lines))
                instance = found.group(1) if found else ""
            else:
                label = "miniecs.instance" if moment == "first task" else "miniecs.demo"
                if seen := client.containers.list(
                    sparse=True, filters={"label": f"{label}={instance}"}
                ):
                    break
            time.sleep(0.1)
        assert seen, f"the demo never reached {moment}:\n{''.join(lines)}"
        tasks = client.containers.list(
            sparse=True, filters={"label": f"miniecs.instance={instance}"}
        )
        assert tasks, "no task container seen before the interrupt"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=45)
        reader.join(5)
        out = "".join(lines)
        assert proc.returncode == 130, out
        assert "interrupted; everything the demo created was removed" in out
        for label in (f"miniecs.instance={instance}", f"miniecs.demo={instance}"):
            left = client.containers.list(sparse=True, all=True, filters={"label": label})
            assert left == [], f"{label}: {[c.name for c in left]}"
            assert client.networks.list(filters={"label": label}) == [], label
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
        if instance:
            remove_by_label(f"miniecs.instance={instance}")
            remove_by_label(f"miniecs.demo={instance}")
