"""Install hygiene: the wheel, built with its declared build requirements (pip's build isolation),
installs into a fresh virtualenv without extras, and every command works there: each one's
--help, and smoke runs of `server --port 0`, `top --once`, `why`, `logs` (when the command
exists) and `load` (exit 0 on good answers, 1 on refused connections)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, remove_by_label, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.recipes, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]


def run(*cmd: str | Path, timeout: float = 600, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=False,
        **kwargs,
    )  # fmt: skip
    print(f"$ {' '.join(map(str, cmd))} -> {done.returncode}")
    return done


def command_paths() -> list[list[str]]:
    """Every command and subcommand of the CLI, from typer's own tree."""
    import typer

    from miniecs.cli import app

    paths: list[list[str]] = []

    def walk(group: Any, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            paths.append([*prefix, name])
            if hasattr(command, "commands"):  # a group (typer may vendor its own click)
                walk(command, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_wheel_installs_without_extras_and_every_command_runs(tmp_path: Path, images: None) -> None:
    dist = tmp_path / "dist"
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT)
    assert built.returncode == 0, built.stderr  # setuptools as pyproject requires, isolated
    (wheel,) = dist.glob("miniecs-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"miniecs/_workload/app.py", "miniecs/alb/Dockerfile"} <= names
    assert any(n.endswith("entry_points.txt") for n in names)

    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    pip = run(venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel)
    assert pip.returncode == 0, pip.stderr
    miniecs = venv / "bin" / "miniecs"
    assert run(venv / "bin" / "python", "-c", "import httpx").returncode != 0  # no dev extras

    for path in [[], *command_paths()]:
        done = run(miniecs, *path, "--help")
        assert done.returncode == 0, (path, done.stderr)
        assert "Usage" in done.stdout

    state = tmp_path / "state"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [miniecs, "server", "--port", "0", "--state-dir", state],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        port = wait_for(lambda: (state / "port").is_file() and (state / "port").read_text().strip())
        endpoint = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{endpoint}/_miniecs/health", timeout=5) as response:
            assert response.status == 200
        top = run(miniecs, "top", "--once", "--output", "json", "--endpoint-url", endpoint)
        assert top.returncode == 0, top.stderr
        why = run(miniecs, "why", "c/web", "--endpoint-url", endpoint)
        assert why.returncode == 1 and "no scalable target" in why.stderr, why.stderr
        if ["logs"] in command_paths():
            logs = run(miniecs, "logs", "--help")
            assert logs.returncode == 0
        health = f"{endpoint}/_miniecs/health"
        good = run(miniecs, "load", "--url", health, "--requests", "20", "--duration", "10")
        assert good.returncode == 0, good.stdout + good.stderr
        refused = f"http://127.0.0.1:{free_port()}/"
        bad = run(miniecs, "load", "--url", refused, "--requests", "5", "--duration", "3")
        assert bad.returncode == 1 and "requests failed" in bad.stderr, bad.stderr
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=60)
        print(out[-2000:])
        if (state / "instance").is_file():
            remove_by_label(f"miniecs.instance={(state / 'instance').read_text().strip()}")
    assert server.returncode == 0
    assert f"listening on http://127.0.0.1:{port}" in out
    assert "\x1b[" not in out  # plain lines when not on a terminal
