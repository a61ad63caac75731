"""The CI recipes of compose/README.md run for real on this machine (issue 13).

- compose: `docker compose` (v2 where installed, else Debian's docker-compose 1.29) runs the
  offline miniecs image with the socket mounted; compose/ci/smoke_test.py runs a service behind
  a load balancer through it.
- Docker-in-Docker: the job of compose/ci/github-actions.yml (dind) and gitlab-ci.yml, in a
  container of miniecs/dind:latest (Debian's docker.io, built offline). `--privileged` fails
  on these machines ("unable to apply caps"), so the nested engine gets the capability list of
  shared/reference/docker-facts.md instead; the steps are the CI files' own.
- bridge mode: a miniecs on this host drives the nested engine over TCP, as with a remote
  engine, and `miniecs load --expect` gates on the answers.

Everything is labelled and removed, also on failure. Marked `recipes`: `-m "not recipes"`
skips them where Docker cannot nest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miniecs import images
from tests.conftest import docker_client, free_port, remove_by_label, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.recipes,
    pytest.mark.timeout(900),
    # docker-compose's and the nested engine's pipes are sometimes collected after the test
    # (an unclosed FileIO, Popen.__del__): not a defect of what is tested here.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "compose" / "ci"
COMPOSE_FILE = ROOT / "compose" / "compose.yaml"
TEST_LABEL = "miniecs.test"
DIND_CAPS = ["SYS_ADMIN", "NET_ADMIN", "NET_RAW", "SYS_PTRACE", "MKNOD"]
"""docker-facts.md: what a nested engine needs here instead of --privileged."""


def compose_command() -> list[str]:
    """`docker compose` (v2) when the plugin is installed, else `docker-compose` (1.29)."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("neither docker compose (v2) nor docker-compose is installed")


def run(*cmd: str, timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    print(f"$ {' '.join(cmd)}  -> {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done


def test_compose_brings_miniecs_up_healthy_and_runs_a_service_behind_a_load_balancer() -> None:
    images.build_all(docker_client(), extra=("miniecs",))
    compose = [
        *compose_command(),
        "-f",
        str(COMPOSE_FILE),
        "-p",
        f"miniecs-t{uuid.uuid4().hex[:8]}",
    ]
    port = free_port()
    env = {**os.environ, "MINIECS_PORT": str(port), "MINIECS_CLOCK_SPEED": "1"}
    instance = ""
    try:
        started = time.monotonic()
        assert run(*compose, "up", "-d", env=env).returncode == 0
        container = run(*compose, "ps", "-q", "miniecs", env=env).stdout.strip()

        def healthy() -> bool:
            state = docker_client().api.inspect_container(container)["State"]
            return bool(state.get("Health", {}).get("Status") == "healthy")

        wait_for(healthy, timeout=90, interval=0.2)
        print(f"docker compose up -> healthy: {time.monotonic() - started:.1f} s")
        instance = run(
            *compose, "exec", "-T", "miniecs", "cat", "/var/lib/miniecs/instance", env=env
        ).stdout.strip()
        assert instance
        smoke = run(
            sys.executable, str(CI / "smoke_test.py"),
            "--endpoint-url", f"http://127.0.0.1:{port}", "--timeout", "120",
        )  # fmt: skip
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        assert "smoke test passed" in smoke.stdout
        logs = run(*compose, "logs", "--no-color", "miniecs", env=env).stdout
        assert "-> RUNNING" in logs and "-> STOPPED" in logs  # one line per state change
    finally:
        run(*compose, "down", "-v", "--timeout", "30", env=env)
        if instance:  # the README's cleanup, scoped to this instance
            remove_by_label(f"miniecs.instance={instance}")
    client = docker_client()
    label = {"label": f"miniecs.instance={instance}"}
    assert client.containers.list(all=True, filters=label) == []
    assert client.networks.list(filters=label) == []


# --- Docker-in-Docker -----------------------------------------------------------------------


class Dind:
    """A running miniecs/dind:latest container with its engine answering."""

    def __init__(self, name: str, address: str) -> None:
        self.name, self.address = name, address

    def exec(
        self, *cmd: str, timeout: float = 300, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        return run("docker", "exec", self.name, *cmd, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def dind() -> Iterator[Dind]:
    images.build_all(docker_client(), extra=("dind",))
    name = f"miniecs-dind-{uuid.uuid4().hex[:8]}"
    label = f"{TEST_LABEL}={name}"
    started = time.monotonic()
    try:
        # overlay2 on the tmpfs, not vfs: under vfs a non-root container started with --init
        # (the load balancer's) fails with "stat /sbin/docker-init: permission denied".
        container = docker_client().containers.run(
            images.DIND_IMAGE,
            ["--storage-driver=overlay2", "--host=unix:///var/run/docker.sock",
             "--host=tcp://0.0.0.0:2375"],
            entrypoint=["dockerd"],
            name=name,
            detach=True,
            labels={TEST_LABEL: name},
            cap_add=DIND_CAPS,
            security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            tmpfs={"/var/lib/docker": "exec"},
            volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
        )  # fmt: skip
        wait_for(lambda: run("docker", "exec", name, "docker", "info").returncode == 0, 90, 1)
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        print(f"nested engine answering after {time.monotonic() - started:.1f} s at {address}")
        yield Dind(name, address)
    finally:
        remove_by_label(label)


def test_dind_job_runs_miniecs_and_the_smoke_test_inside(dind: Dind) -> None:
    """The steps of the dind job in compose/ci: the engine has the base image (CI pulls
    python:3.x-slim; here it is loaded, no registry), `miniecs images build`, the server in the
    background, wait_for.py, smoke_test.py, all inside the job's container."""
    started = time.monotonic()
    with subprocess.Popen(["docker", "save", images.BASE_IMAGE], stdout=subprocess.PIPE) as saved:
        loaded = run("docker", "exec", "-i", dind.name, "docker", "load", stdin=saved.stdout)
    assert loaded.returncode == 0
    assert run("docker", "cp", str(CI), f"{dind.name}:/ci").returncode == 0
    built = dind.exec("miniecs", "images", "build", timeout=600)
    assert built.returncode == 0, built.stderr
    assert dind.exec(
        "sh", "-c", "nohup miniecs server --port 4566 --state-dir /tmp/miniecs "
        "--log-format json > /tmp/miniecs.log 2>&1 &",
    ).returncode == 0  # fmt: skip
    assert (
        dind.exec("python3", "/ci/wait_for.py", "http://127.0.0.1:4566/_miniecs/health").returncode
        == 0
    )
    smoke = dind.exec(
        "python3", "/ci/smoke_test.py", "--endpoint-url", "http://127.0.0.1:4566",
        "--through", "miniecs-load",
    )  # fmt: skip
    log = dind.exec("cat", "/tmp/miniecs.log").stdout
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr + log[-3000:]
    print(
        f"DinD job (load base, images build, server, smoke test): "
        f"{time.monotonic() - started:.1f} s"
    )
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(e["message"].endswith("-> RUNNING") for e in entries), log[-2000:]


def test_bridge_mode_drives_the_nested_engine_over_tcp(dind: Dind, tmp_path: Path) -> None:
    """miniecs on this host, tasks on the nested engine (DOCKER_HOST=tcp://...), as with a
    remote engine: tasks run, and `miniecs load --expect` runs its client on that engine and
    exits 0 on good answers and 1 on unexpected ones."""
    engine = f"tcp://{dind.address}:2375"
    save = ["docker", "save", images.WORKLOAD_IMAGE, images.BASE_IMAGE]
    with subprocess.Popen(save, stdout=subprocess.PIPE) as saved:
        loaded = run("docker", "exec", "-i", dind.name, "docker", "load", stdin=saved.stdout)
    assert loaded.returncode == 0
    env = {**os.environ, "DOCKER_HOST": engine}
    state = tmp_path / "state"
    server = subprocess.Popen(
        [sys.executable, "-m", "miniecs", "server", "--port", "0", "--state-dir", str(state)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        port = wait_for(lambda: (state / "port").is_file() and (state / "port").read_text().strip())
        endpoint = f"http://127.0.0.1:{port}"
        smoke = run(sys.executable, str(CI / "smoke_test.py"), "--endpoint-url", endpoint,
                    "--no-load-balancer")  # fmt: skip
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        import boto3

        ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="t", aws_secret_access_key="t")  # fmt: skip
        ecs.create_cluster(clusterName="bridge")
        ecs.register_task_definition(
            family="bridge", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
            cpu="256", memory="512",
            containerDefinitions=[{"name": "app", "image": images.WORKLOAD_IMAGE,
                                   "portMappings": [{"containerPort": 8080}]}],
        )  # fmt: skip
        task = ecs.run_task(
            cluster="bridge",
            taskDefinition="bridge",
            networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}},
        )["tasks"][0]["taskArn"]
        ecs.get_waiter("tasks_running").wait(
            cluster="bridge", tasks=[task], WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        load = [
            sys.executable,
            "-m",
            "miniecs",
            "load",
            "--to-task",
            task,
            "--cluster",
            "bridge",
            "--endpoint-url",
            endpoint,
            "--requests",
            "40",
            "--duration",
            "20",
            "--path",
            "/",
        ]
        good = run(*load, env=env)
        assert good.returncode == 0, good.stdout + good.stderr
        bad = run(*load, "--expect", "404", env=env)
        assert bad.returncode == 1 and "unexpected statuses" in bad.stderr
        ecs.stop_task(cluster="bridge", task=task)
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=60)
        print(out[-3000:])
    assert f"miniecs listening on http://127.0.0.1:{port}" in out


# --- a base with another Python ---------------------------------------------------------------

OTHER_BASE = "miniecs/base-test:trixie"


def test_images_are_built_for_the_python_the_base_carries() -> None:
    """A base carrying Python 3.13 (Debian trixie, made offline like the real base; the
    python:3.12/3.13-slim images cannot be pulled here) gets an ALB image whose uvloop and
    httptools are 3.13 builds: the image's own build step imports them with the base's
    Python, and so does a container of it."""
    import dataclasses

    client = docker_client()
    images.ensure_recipe_image(client, images.BaseRecipe(suite="trixie"), OTHER_BASE)
    python = images.base_python(client, OTHER_BASE)
    assert python == (3, 13)
    spec = dataclasses.replace(
        images.alb_spec(python, base=OTHER_BASE), name="alb-test", tag="miniecs/alb-test:py313"
    )
    images.build_image(client, spec)
    out = client.containers.run(
        spec.tag, ["-c", "import sys, uvloop, httptools; print(sys.version_info[:2])"],
        entrypoint=["python3"], remove=True, labels={TEST_LABEL: "python"},
    )  # fmt: skip
    assert out.decode().strip() == "(3, 13)"
    # The same image built for the offline base's Python cannot load on 3.13: the mechanism
    # is what makes it work, not luck.
    wrong = dataclasses.replace(
        images.alb_spec((3, 11), base=OTHER_BASE), name="alb-test", tag="miniecs/alb-test:wrong"
    )
    with pytest.raises(images.ImageBuildError, match=r"uvloop|httptools"):
        images.build_image(client, wrong)
