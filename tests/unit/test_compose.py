"""compose/: the compose file and the CI examples say what their README says (the offline
miniecs image, socket mounted, state in a named volume, loopback-only port, healthcheck, 0.0.0.0
inside). tests/integration/test_recipes.py runs them for real."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "compose"


def load(name: str) -> Any:
    return yaml.safe_load((COMPOSE / name).read_text())


def test_compose_file_runs_miniecs_as_documented() -> None:
    doc = load("compose.yaml")
    service = doc["services"]["miniecs"]
    assert service["image"] == "miniecs/miniecs:latest" and "build" not in service
    assert service["pull_policy"] == "never"  # built offline by `miniecs images build`
    command = service["command"]
    assert command[:3] == ["server", "--host", "0.0.0.0"]
    assert service["ports"] == ["127.0.0.1:${MINIECS_PORT:-4566}:4566"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in service["volumes"]
    assert "miniecs-state:/var/lib/miniecs" in service["volumes"]
    assert "miniecs-state" in doc["volumes"]
    assert service["environment"]["MINIECS_STATE_DIR"] == "/var/lib/miniecs"
    assert "/_miniecs/health" in " ".join(service["healthcheck"]["test"])


def test_miniecs_image_matches_compose() -> None:
    from miniecs.images import MINIECS_DOCKERFILE

    text = MINIECS_DOCKERFILE.decode()
    assert "FROM ${BASE}" in text and "ADD site.tar" in text
    assert '"--host", "0.0.0.0"' in text and "/_miniecs/health" in text
    assert "MINIECS_WORKLOAD_DIR=/opt/miniecs/miniecs/_workload" in text


def test_ci_examples_start_miniecs_and_run_the_smoke_test() -> None:
    github = load("ci/github-actions.yml")
    assert set(github["jobs"]) == {"compose", "dind"}
    for job in github["jobs"].values():
        runs = " ".join(str(step.get("run", "")) for step in job["steps"])
        assert "compose/ci/smoke_test.py" in runs
        assert "miniecs images build" in runs
    assert "--with miniecs" in " ".join(
        str(step.get("run", "")) for step in github["jobs"]["compose"]["steps"]
    )
    assert github["jobs"]["dind"]["env"]["DOCKER_HOST"] == "tcp://docker:2375"
    gitlab = load("ci/gitlab-ci.yml")["miniecs-smoke"]
    assert any("docker" in str(s) and "dind" in str(s) for s in gitlab["services"])
    script = " ".join(gitlab["script"])
    assert "miniecs server" in script and "compose/ci/smoke_test.py" in script


@pytest.mark.parametrize("tool", [["docker", "compose"], ["docker-compose"]])
def test_compose_config_validates(tool: list[str]) -> None:
    if shutil.which(tool[0]) is None:
        pytest.skip(f"{tool[0]} is not installed")
    probe = subprocess.run([*tool, "version"], capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"{' '.join(tool)} is not available")
    done = subprocess.run(
        [*tool, "-f", str(COMPOSE / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
