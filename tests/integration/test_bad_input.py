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
from typing import Any

import pytest

from tests.conftest import Miniecs, docker_client, remove_by_label

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


# --- the API door and bounds (issue 14), through boto3 and raw HTTP against a real server ---


def test_huge_desired_count_answers_aws_error_fast_and_the_server_stays_healthy(
    miniecs: Miniecs,
) -> None:
    import botocore.exceptions
    import httpx

    ecs = miniecs.client()
    ecs.create_cluster(clusterName="big")
    ecs.register_task_definition(
        family="big",
        containerDefinitions=[{"name": "app", "image": "miniecs/workload:latest"}],
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )
    for count, code in ((10**12, "SerializationException"), (5001, "InvalidParameterException")):
        started = time.perf_counter()
        with pytest.raises(botocore.exceptions.ClientError) as err:
            ecs.create_service(
                cluster="big", serviceName="big", taskDefinition="big", desiredCount=count
            )
        elapsed = time.perf_counter() - started
        assert err.value.response["Error"]["Code"] == code
        assert elapsed < 0.1, f"desiredCount={count} took {elapsed * 1000:.0f} ms"
    assert "Member must have value less than or equal to 5000" in str(err.value)
    assert ecs.list_services(cluster="big")["serviceArns"] == []
    assert httpx.get(f"{miniecs.endpoint}/_miniecs/health", timeout=5).status_code == 200


def test_cross_site_form_post_changes_nothing(miniecs: Miniecs) -> None:
    """The form a web page can send without a preflight (it deleted a load balancer before)."""
    import httpx

    elb = miniecs.client("elbv2")
    arn = elb.create_load_balancer(Name="victim", Type="application")["LoadBalancers"][0][
        "LoadBalancerArn"
    ]
    form = f"Action=DeleteLoadBalancer&Version=2015-12-01&LoadBalancerArn={arn}"
    browser = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Origin": "https://evil.example",
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "navigate",
    }
    refused = httpx.post(miniecs.endpoint, content=form, headers=browser, timeout=5)
    assert refused.status_code == 403
    # a browser that sent no Origin still cannot sign
    unsigned = httpx.post(
        miniecs.endpoint,
        content=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert unsigned.status_code == 403
    assert b"<Code>MissingAuthenticationToken</Code>" in unsigned.content
    lbs = elb.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"]
    assert [lb["LoadBalancerArn"] for lb in lbs] == [arn]
    elb.delete_load_balancer(LoadBalancerArn=arn)


@pytest.mark.parametrize(
    ("service", "call"),
    [
        ("sts", lambda c: c.get_caller_identity()),
        ("ec2", lambda c: c.describe_vpcs()),
        ("iam", lambda c: c.list_roles()),
        ("cloudformation", lambda c: c.list_stacks()),
        ("sns", lambda c: c.list_topics()),
    ],
)
def test_services_not_emulated_answer_in_their_own_protocol(
    miniecs: Miniecs, service: str, call: Any
) -> None:
    import botocore.exceptions

    client = miniecs.client(service)
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call(client)
    error = err.value.response["Error"]
    assert error["Code"] == "NotImplemented"
    assert "is not emulated by miniecs" in error["Message"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def test_too_deep_and_too_large_bodies_get_aws_errors(miniecs: Miniecs) -> None:
    from tests import sigv4

    target = {
        "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
        "Content-Type": "application/x-amz-json-1.1",
    }
    deep = sigv4.post(miniecs.endpoint, b"[" * 200_000 + b"]" * 200_000, target, timeout=5)
    assert deep.status_code == 400 and deep.json()["__type"] == "SerializationException"
    large = sigv4.post(miniecs.endpoint, b"[" * 1_100_000 + b"]" * 1_100_000, target, timeout=5)
    assert large.status_code == 413 and large.json()["__type"] == "RequestEntityTooLarge"
    nested = b'{"clusters": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deep = sigv4.post(miniecs.endpoint, nested, target, timeout=5)
    assert deep.status_code == 400 and deep.json()["__type"] == "SerializationException"
    assert miniecs.client().list_clusters()["clusterArns"] == []
