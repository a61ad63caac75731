"""The task-start path as on Fargate, through boto3 against a real server with real containers:
awslogs output in CloudWatch Logs, secrets from Secrets Manager and SSM in the environment, and
ECS's ResourceInitializationError when either cannot be had.

Sources: ECS developer guide, "Using the awslogs log driver" (stream name
prefix/container-name/ecs-task-id, awslogs-create-group) and "Pass sensitive data to a container"
(valueFrom ARN with :json-key:version-stage:version-id); stopped reasons as ECS reports them
(AWS re:Post knowledge center "ecs-unable-to-pull-secrets"; public CI logs quoting
"invalid ssm parameters").
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from miniecs.demo import NETWORK_CONFIGURATION
from tests.conftest import Miniecs, docker_client, wait_for

pytestmark = pytest.mark.integration

PRINTER = (
    "import os, sys, time\n"
    "print('hello from', os.environ['MINIECS_CONTAINER_NAME'], flush=True)\n"
    "print('db', os.environ.get('DB_PASSWORD'), 'key', os.environ.get('API_KEY'), flush=True)\n"
    "print('to stderr', file=sys.stderr, flush=True)\n"
    "i = 0\n"
    "while True:\n"
    "    i += 1\n"
    "    print('tick', i, time.time(), flush=True)\n"
    "    time.sleep(0.2)\n"
)


def task_definition(family: str, group: str, create: bool = False, **extra: Any) -> dict[str, Any]:
    options = {
        "awslogs-group": group,
        "awslogs-region": "us-east-1",
        "awslogs-stream-prefix": "ecs",
    }
    if create:
        options["awslogs-create-group"] = "true"
    container: dict[str, Any] = {
        "name": "app",
        "image": "miniecs/base:bookworm",
        "command": ["python3", "-c", PRINTER],
        "logConfiguration": {"logDriver": "awslogs", "options": options},
        "stopTimeout": 2,
        **extra,
    }
    return {
        "family": family,
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [container],
    }


def stopped(ecs: Any, cluster: str, arn: str) -> dict[str, Any] | None:
    task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
    return task if task["lastStatus"] == "STOPPED" else None


def messages(logs: Any, group: str, **kwargs: Any) -> list[str]:
    """The group's messages; none while the task has not created its group yet."""
    try:
        events = logs.filter_log_events(logGroupName=group, **kwargs)["events"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [e["message"] for e in events]


def test_awslogs_and_secrets_reach_the_task(miniecs: Miniecs) -> None:
    ecs, logs = miniecs.client(), miniecs.client("logs")
    sm, ssm = miniecs.client("secretsmanager"), miniecs.client("ssm")
    secret = sm.create_secret(Name="prod/db", SecretString='{"password": "pa55", "user": "u"}')
    ssm.put_parameter(Name="/prod/api-key", Value="k3y", Type="SecureString")
    ecs.create_cluster(clusterName="lg")
    ecs.register_task_definition(
        **task_definition(
            "printer",
            "/ecs/printer",
            create=True,
            secrets=[
                {"name": "DB_PASSWORD", "valueFrom": f"{secret['ARN']}:password::"},
                {"name": "API_KEY", "valueFrom": "/prod/api-key"},
            ],
        )
    )
    arn = ecs.run_task(
        cluster="lg", taskDefinition="printer", networkConfiguration=NETWORK_CONFIGURATION
    )["tasks"][0]["taskArn"]
    task_id = arn.rsplit("/", 1)[1]
    stream = f"ecs/app/{task_id}"
    lines = wait_for(
        lambda: (
            [m for m in messages(logs, "/ecs/printer") if "tick 3 " in m]
            and messages(logs, "/ecs/printer")
        ),
        timeout=30,
    )
    assert "hello from app" in lines  # stderr lines interleave by their own timestamps
    assert "db pa55 key k3y" in lines
    assert "to stderr" in lines
    streams = logs.describe_log_streams(logGroupName="/ecs/printer")["logStreams"]
    assert [s["logStreamName"] for s in streams] == [stream]
    # the container's own timestamps: "tick N <time.time()>" was written at its event's time
    events = logs.get_log_events(
        logGroupName="/ecs/printer", logStreamName=stream, startFromHead=True
    )["events"]
    for e in events:
        if e["message"].startswith("tick"):
            written = float(e["message"].split()[2]) * 1000
            assert abs(e["timestamp"] - written) < 1000  # Docker stamps it as it reads it
    described = str(ecs.describe_tasks(cluster="lg", tasks=[arn]))
    assert "pa55" not in described and "k3y" not in described
    assert messages(logs, "/ecs/printer", filterPattern='"db pa55"') == ["db pa55 key k3y"]
    from miniecs import logtail

    printed: list[str] = []
    logtail.run(miniecs.endpoint, "us-east-1", "lg", task_id, False, 600, printed.append)
    assert any(p.endswith(f" {stream} hello from app") for p in printed)  # `miniecs logs`
    ecs.stop_task(cluster="lg", task=arn)
    wait_for(lambda: stopped(ecs, "lg", arn), timeout=60)


def test_missing_group_and_missing_secret_stop_the_task_with_ecs_wording(
    miniecs: Miniecs,
) -> None:
    ecs = miniecs.client()
    ecs.create_cluster(clusterName="bad")
    ecs.register_task_definition(**task_definition("nogroup", "/ecs/absent"))
    arn = ecs.run_task(
        cluster="bad", taskDefinition="nogroup", networkConfiguration=NETWORK_CONFIGURATION
    )["tasks"][0]["taskArn"]
    task = wait_for(lambda: stopped(ecs, "bad", arn), timeout=30)
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"] == (
        "ResourceInitializationError: failed to validate logger args: create stream has been "
        "retried 1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: "
        "The specified log group does not exist. : exit status 1"
    )
    ecs.register_task_definition(
        **task_definition(
            "nosecret",
            "/ecs/x",
            create=True,
            secrets=[
                {
                    "name": "S",
                    "valueFrom": "arn:aws:secretsmanager:us-east-1:000000000000:secret:gone",
                }
            ],
        )
    )
    arn = ecs.run_task(
        cluster="bad", taskDefinition="nosecret", networkConfiguration=NETWORK_CONFIGURATION
    )["tasks"][0]["taskArn"]
    task = wait_for(lambda: stopped(ecs, "bad", arn), timeout=30)
    assert task["stoppedReason"].startswith(
        "ResourceInitializationError: unable to pull secrets or registry auth: execution "
        "resource retrieval failed: unable to retrieve secret from asm: service call has been "
        "retried 1 time(s): failed to fetch secret "
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:gone from secrets manager: "
        "ResourceNotFoundException"
    )
    ecs.register_task_definition(
        **task_definition(
            "noparam", "/ecs/x", secrets=[{"name": "P", "valueFrom": "/missing/param"}]
        )
    )
    arn = ecs.run_task(
        cluster="bad", taskDefinition="noparam", networkConfiguration=NETWORK_CONFIGURATION
    )["tasks"][0]["taskArn"]
    task = wait_for(lambda: stopped(ecs, "bad", arn), timeout=30)
    assert task["stoppedReason"] == (
        "ResourceInitializationError: unable to pull secrets or registry auth: execution "
        "resource retrieval failed: unable to retrieve secrets from ssm: service call has been "
        "retried 1 time(s): invalid ssm parameters: /missing/param"
    )
    # no container was ever created for these tasks
    mine = {"label": f"miniecs.instance={miniecs.instance}"}
    assert docker_client().containers.list(all=True, filters=mine) == []


BURST = (
    "import sys, time\n"
    "n, rate = int(sys.argv[1]), int(sys.argv[2])\n"
    "start = time.time()\n"
    "for i in range(n):\n"
    "    if i % 1000 == 0:\n"
    "        ahead = start + i / rate - time.time()\n"
    "        if ahead > 0: time.sleep(ahead)\n"
    "    sys.stdout.write(f'line {i}\\n')\n"
    "    if i % 100 == 99: sys.stdout.flush()\n"
    "sys.stdout.flush()\n"
    "print('wrote', n, 'in', round(time.time() - start, 3), flush=True)\n"
    "time.sleep(3600)\n"
)


def test_ten_thousand_lines_a_second_survive_a_sigkill_of_miniecs(
    server_process: Any,
) -> None:
    """10,000 lines/s for 4 s; miniecs is SIGKILLed in the middle and restarted: every line
    arrives exactly once, and the container wrote at its own pace."""
    from tests.conftest import boto_client

    server_process.start()
    ecs, logs = (boto_client(s, server_process.endpoint) for s in ("ecs", "logs"))
    ecs.create_cluster(clusterName="burst")
    td = task_definition("burst", "/ecs/burst", create=True)
    td["containerDefinitions"][0]["command"] = ["python3", "-c", BURST, "40000", "10000"]
    ecs.register_task_definition(**td)
    arn = ecs.run_task(
        cluster="burst", taskDefinition="burst", networkConfiguration=NETWORK_CONFIGURATION
    )["tasks"][0]["taskArn"]
    stream = f"ecs/app/{arn.rsplit('/', 1)[1]}"

    def count() -> int:
        try:
            streams = logs.describe_log_streams(logGroupName="/ecs/burst")["logStreams"]
        except logs.exceptions.ResourceNotFoundException:
            return 0
        return sum(s["storedBytes"] > 0 for s in streams) and len(all_lines(logs, stream))

    wait_for(lambda: count() > 5000, timeout=60, interval=0.2)
    server_process.kill()
    time.sleep(1.5)
    server_process.start()
    lines = wait_for(
        lambda: (got := all_lines(logs, stream)) and got[-1].startswith("wrote") and got,
        timeout=60,
        interval=0.5,
    )
    numbered = [m for m in lines if m.startswith("line ")]
    assert numbered == [f"line {i}" for i in range(40000)]
    elapsed = float(lines[-1].split()[-1])
    assert elapsed < 4.0 * 1.25, f"the container was slowed down: {elapsed} s for 4 s of lines"
    ecs.stop_task(cluster="burst", task=arn)
    wait_for(lambda: stopped(ecs, "burst", arn), timeout=60)
    assert server_process.terminate() == 0


def all_lines(logs: Any, stream: str) -> list[str]:
    out: list[str] = []
    kwargs: dict[str, Any] = {
        "logGroupName": "/ecs/burst",
        "logStreamName": stream,
        "startFromHead": True,
    }
    while True:
        try:
            page = logs.get_log_events(**kwargs)
        except logs.exceptions.ResourceNotFoundException:
            return out
        out += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == kwargs.get("nextToken"):
            return out
        kwargs["nextToken"] = page["nextForwardToken"]


def test_done_means_through_the_aws_cli(miniecs: Miniecs, tmp_path: Any) -> None:
    """Issue 11's acceptance, with the aws CLI only: a service whose task definition uses
    awslogs and two secrets starts, its lines are readable, the container sees both values,
    the ulimit is clamped with a service event, and a secret deleted before the next deployment
    makes the new task stop with ECS's wording."""
    import json
    import subprocess
    import sys

    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": "/usr/bin:/bin",
    }

    def aws(*args: str) -> Any:
        out = subprocess.run(
            [sys.executable, "-m", "awscli", *args, "--endpoint-url", miniecs.endpoint],
            capture_output=True,
            env=env,
            check=True,
        )
        return json.loads(out.stdout) if out.stdout.strip() else None

    arn = aws("secretsmanager", "create-secret", "--name", "db", "--secret-string", "pa55")["ARN"]
    aws("ssm", "put-parameter", "--name", "/api-key", "--value", "k3y", "--type", "SecureString")
    td = task_definition(
        "svc",
        "/ecs/svc",
        create=True,
        secrets=[
            {"name": "DB_PASSWORD", "valueFrom": arn},
            {"name": "API_KEY", "valueFrom": "/api-key"},
        ],
        ulimits=[{"name": "nofile", "softLimit": 1048576, "hardLimit": 1048576}],
    )
    path = tmp_path / "td.json"
    path.write_text(json.dumps(td))
    aws("ecs", "create-cluster", "--cluster-name", "cli")
    aws("ecs", "register-task-definition", "--cli-input-json", f"file://{path}")
    aws(
        "ecs", "create-service", "--cluster", "cli", "--service-name", "svc",
        "--task-definition", "svc", "--desired-count", "1",
        "--network-configuration", "awsvpcConfiguration={subnets=[subnet-0123456789abcdef0]}",
    )  # fmt: skip

    def logged() -> list[str]:
        try:
            got = aws("logs", "filter-log-events", "--log-group-name", "/ecs/svc")
        except subprocess.CalledProcessError:
            return []
        return [e["message"] for e in got["events"]]

    lines = wait_for(lambda: (got := logged()) and "db pa55 key k3y" in got and got, timeout=60)
    assert "hello from app" in lines  # stderr lines interleave by their own timestamps
    events = aws("ecs", "describe-services", "--cluster", "cli", "--services", "svc")
    messages = [e["message"] for e in events["services"][0]["events"]]
    from miniecs.runtime.docker import parse_proc_limits

    probe = docker_client().containers.run(
        "miniecs/base:bookworm", ["cat", "/proc/self/limits"], remove=True, network_mode="none"
    )
    host = parse_proc_limits(probe.decode())["nofile"]
    clamped = [m for m in messages if "ulimit nofile 1048576:1048576 clamped" in m]
    assert len(clamped) == (1 if host < 1048576 else 0), messages
    aws("secretsmanager", "delete-secret", "--secret-id", "db", "--force-delete-without-recovery")
    aws("ecs", "update-service", "--cluster", "cli", "--service", "svc", "--force-new-deployment")

    def failed_task() -> dict[str, Any] | None:
        arns = aws("ecs", "list-tasks", "--cluster", "cli", "--desired-status", "STOPPED")
        if not arns["taskArns"]:
            return None
        tasks = aws("ecs", "describe-tasks", "--cluster", "cli", "--tasks", *arns["taskArns"])
        return next((t for t in tasks["tasks"] if t.get("stopCode") == "TaskFailedToStart"), None)

    task = wait_for(failed_task, timeout=60, interval=0.5)
    assert task["stoppedReason"].startswith(
        "ResourceInitializationError: unable to pull secrets or registry auth: execution "
        f"resource retrieval failed: unable to retrieve secret from asm: service call has been "
        f"retried 1 time(s): failed to fetch secret {arn} from secrets manager: "
        "ResourceNotFoundException"
    )
    aws("ecs", "delete-service", "--cluster", "cli", "--service", "svc", "--force")
