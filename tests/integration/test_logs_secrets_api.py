"""CloudWatch Logs, Secrets Manager and SSM Parameter Store through boto3 and the aws CLI, every
response checked against botocore's model (the fixture's validator). Limits, messages and
behaviours from the services' API references (PutLogEvents' batch rules, GetLogEvents' tokens,
PutRetentionPolicy's values; Secrets Manager staging labels and recovery window; SSM
versions, paths and SecureString decryption)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import botocore.exceptions
import pytest

from tests.conftest import Miniecs

pytestmark = pytest.mark.integration


def code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def now_ms() -> int:
    return int(time.time() * 1000)


def test_log_groups_streams_tags_and_retention(miniecs: Miniecs) -> None:
    logs = miniecs.client("logs")
    logs.create_log_group(logGroupName="/ecs/a", tags={"team": "x"})
    logs.create_log_group(logGroupName="/ecs/b")
    logs.create_log_group(logGroupName="other")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_group(logGroupName="/ecs/a")
    assert code(exc) == "ResourceAlreadyExistsException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_group(logGroupName="bad name!")
    assert code(exc) == "InvalidParameterException"
    page = logs.describe_log_groups(logGroupNamePrefix="/ecs/", limit=1)
    assert [g["logGroupName"] for g in page["logGroups"]] == ["/ecs/a"]
    page = logs.describe_log_groups(logGroupNamePrefix="/ecs/", nextToken=page["nextToken"])
    assert [g["logGroupName"] for g in page["logGroups"]] == ["/ecs/b"]
    assert "nextToken" not in page
    group = logs.describe_log_groups(logGroupNamePrefix="/ecs/a")["logGroups"][0]
    assert group["arn"] == "arn:aws:logs:us-east-1:000000000000:log-group:/ecs/a:*"
    assert logs.list_tags_for_resource(resourceArn=group["logGroupArn"])["tags"] == {"team": "x"}
    logs.tag_resource(resourceArn=group["logGroupArn"], tags={"env": "ci"})
    logs.untag_resource(resourceArn=group["logGroupArn"], tagKeys=["team"])
    assert logs.list_tags_log_group(logGroupName="/ecs/a")["tags"] == {"env": "ci"}
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.put_retention_policy(logGroupName="/ecs/a", retentionInDays=2)
    assert code(exc) == "InvalidParameterException"
    logs.create_log_stream(logGroupName="/ecs/a", logStreamName="s")
    old = now_ms() - 10 * 86_400_000
    logs.put_log_events(
        logGroupName="/ecs/a",
        logStreamName="s",
        logEvents=[{"timestamp": old, "message": "old"}, {"timestamp": old + 1, "message": "o2"}],
    )
    logs.put_log_events(
        logGroupName="/ecs/a",
        logStreamName="s",
        logEvents=[{"timestamp": now_ms(), "message": "new"}],
    )
    logs.put_retention_policy(logGroupName="/ecs/a", retentionInDays=7)
    kept = logs.filter_log_events(logGroupName="/ecs/a")["events"]
    assert [e["message"] for e in kept] == ["new"]  # retention is enforced
    assert (
        logs.describe_log_groups(logGroupNamePrefix="/ecs/a")["logGroups"][0]["retentionInDays"]
        == 7
    )
    rejected = logs.put_log_events(
        logGroupName="/ecs/a", logStreamName="s", logEvents=[{"timestamp": old, "message": "x"}]
    )["rejectedLogEventsInfo"]
    assert rejected == {"expiredLogEventEndIndex": 0}
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_stream(logGroupName="/ecs/a", logStreamName="s")
    assert code(exc) == "ResourceAlreadyExistsException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_stream(logGroupName="/ecs/a", logStreamName="a:b")
    assert code(exc) == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_stream(logGroupName="/nope", logStreamName="s")
    assert code(exc) == "ResourceNotFoundException"
    logs.delete_log_stream(logGroupName="/ecs/a", logStreamName="s")
    logs.delete_log_group(logGroupName="/ecs/a")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.delete_log_group(logGroupName="/ecs/a")
    assert code(exc) == "ResourceNotFoundException"


def test_put_get_and_filter_log_events(miniecs: Miniecs) -> None:
    logs = miniecs.client("logs")
    logs.create_log_group(logGroupName="g")
    for s in ("web/app/1", "web/app/2", "worker/1"):
        logs.create_log_stream(logGroupName="g", logStreamName=s)
    base = now_ms() - 60_000
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.put_log_events(
            logGroupName="g",
            logStreamName="web/app/1",
            logEvents=[
                {"timestamp": base + 1, "message": "b"},
                {"timestamp": base, "message": "a"},
            ],
        )
    assert code(exc) == "InvalidParameterException"
    assert "chronological" in str(exc.value)
    assert logs.filter_log_events(logGroupName="g")["events"] == []  # nothing half-written
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.put_log_events(
            logGroupName="g",
            logStreamName="web/app/1",
            logEvents=[{"timestamp": base, "message": "x" * 600_000}] * 2,
        )
    assert code(exc) == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.put_log_events(
            logGroupName="g", logStreamName="nope", logEvents=[{"timestamp": base, "message": "a"}]
        )
    assert code(exc) == "ResourceNotFoundException"
    too_new = logs.put_log_events(
        logGroupName="g",
        logStreamName="worker/1",
        logEvents=[
            {"timestamp": base, "message": "ok"},
            {"timestamp": now_ms() + 3 * 3600_000, "message": "future"},
        ],
    )
    assert too_new["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}
    messages = [f"GET /health 200 {i}" if i % 3 else f"ERROR disk full {i}" for i in range(25)]
    logs.put_log_events(
        logGroupName="g",
        logStreamName="web/app/1",
        logEvents=[{"timestamp": base + 10 + i, "message": m} for i, m in enumerate(messages)],
    )
    logs.put_log_events(
        logGroupName="g",
        logStreamName="web/app/2",
        logEvents=[{"timestamp": base + 5, "message": "WARN slow"}],
    )
    # GetLogEvents: the newest by default, forward from the head, tokens that end pagination
    latest = logs.get_log_events(logGroupName="g", logStreamName="web/app/1", limit=5)
    assert [e["message"] for e in latest["events"]] == messages[-5:]
    back = logs.get_log_events(
        logGroupName="g", logStreamName="web/app/1", limit=5, nextToken=latest["nextBackwardToken"]
    )
    assert [e["message"] for e in back["events"]] == messages[-10:-5]
    seen: list[str] = []
    token = None
    for _ in range(10):
        kwargs: dict[str, Any] = {"nextToken": token} if token else {"startFromHead": True}
        page = logs.get_log_events(logGroupName="g", logStreamName="web/app/1", limit=10, **kwargs)
        seen += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    assert seen == messages

    # FilterLogEvents: terms, quoted phrases, ?any, -exclusion, stream prefix, time range
    def matching(**kwargs: Any) -> list[str]:
        return [e["message"] for e in logs.filter_log_events(logGroupName="g", **kwargs)["events"]]

    assert matching(filterPattern="ERROR") == [m for m in messages if "ERROR" in m]
    assert matching(filterPattern='"disk full 3"') == ["ERROR disk full 3"]
    assert matching(filterPattern="?WARN ?ERROR", logStreamNamePrefix="web/app/")[:2] == [
        "WARN slow",
        "ERROR disk full 0",
    ]
    assert matching(filterPattern="GET -200") == []
    assert matching(logStreamNames=["worker/1"]) == ["ok"]
    assert matching(startTime=base + 10, endTime=base + 12) == messages[:2]
    paged = logs.filter_log_events(logGroupName="g", limit=3)
    assert len(paged["events"]) == 3 and paged["nextToken"]
    assert paged["events"][0]["eventId"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.filter_log_events(
            logGroupName="g", logStreamNames=["worker/1"], logStreamNamePrefix="web"
        )
    assert code(exc) == "InvalidParameterException"


def test_aws_cli_reads_logs(miniecs: Miniecs) -> None:
    logs = miniecs.client("logs")
    logs.create_log_group(logGroupName="/ecs/cli")
    logs.create_log_stream(logGroupName="/ecs/cli", logStreamName="ecs/app/1")
    logs.put_log_events(
        logGroupName="/ecs/cli",
        logStreamName="ecs/app/1",
        logEvents=[{"timestamp": now_ms(), "message": f"line {i}"} for i in range(3)],
    )
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": "/usr/bin:/bin",
    }
    base = [sys.executable, "-m", "awscli", "logs", "--endpoint-url", miniecs.endpoint]

    def cli(*args: str) -> Any:
        out = subprocess.run([*base, *args], capture_output=True, env=env, check=True)
        return json.loads(out.stdout)

    got = cli("get-log-events", "--log-group-name", "/ecs/cli", "--log-stream-name", "ecs/app/1")
    assert [e["message"] for e in got["events"]] == ["line 0", "line 1", "line 2"]
    got = cli("filter-log-events", "--log-group-name", "/ecs/cli", "--filter-pattern", "line")
    assert len(got["events"]) == 3
    got = cli("describe-log-groups")
    assert got["logGroups"][0]["logGroupName"] == "/ecs/cli"


def test_secrets_manager(miniecs: Miniecs) -> None:
    sm = miniecs.client("secretsmanager")
    created = sm.create_secret(Name="app/db", SecretString="one", Tags=[{"Key": "k", "Value": "v"}])
    assert created["ARN"].startswith("arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db-")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.create_secret(Name="app/db", SecretString="x")
    assert code(exc) == "ResourceExistsException"
    first = created["VersionId"]
    second = sm.put_secret_value(SecretId="app/db", SecretString="two")["VersionId"]
    assert sm.get_secret_value(SecretId=created["ARN"])["SecretString"] == "two"
    assert (
        sm.get_secret_value(SecretId="app/db", VersionStage="AWSPREVIOUS")["SecretString"] == "one"
    )
    described = sm.describe_secret(SecretId="app/db")
    assert described["VersionIdsToStages"] == {first: ["AWSPREVIOUS"], second: ["AWSCURRENT"]}
    assert described["Tags"] == [{"Key": "k", "Value": "v"}]
    sm.update_secret(SecretId="app/db", Description="the db")
    sm.tag_resource(SecretId="app/db", Tags=[{"Key": "t", "Value": "2"}])
    sm.untag_resource(SecretId="app/db", TagKeys=["k"])
    listed = sm.list_secrets(Filters=[{"Key": "name", "Values": ["app/"]}])["SecretList"]
    assert [(s["Name"], s["Description"]) for s in listed] == [("app/db", "the db")]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.get_secret_value(SecretId="nope")
    assert code(exc) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.delete_secret(SecretId="app/db", RecoveryWindowInDays=3)
    assert code(exc) == "InvalidParameterException"
    deleted = sm.delete_secret(SecretId="app/db", RecoveryWindowInDays=7)
    assert deleted["DeletionDate"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.get_secret_value(SecretId="app/db")
    assert code(exc) == "InvalidRequestException"
    assert sm.list_secrets()["SecretList"] == []
    sm.restore_secret(SecretId="app/db")
    assert sm.get_secret_value(SecretId="app/db")["SecretString"] == "two"
    sm.delete_secret(SecretId="app/db", ForceDeleteWithoutRecovery=True)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.describe_secret(SecretId="app/db")
    assert code(exc) == "ResourceNotFoundException"


def test_ssm_parameter_store(miniecs: Miniecs) -> None:
    ssm = miniecs.client("ssm")
    assert ssm.put_parameter(Name="/app/url", Value="http://a", Type="String")["Version"] == 1
    ssm.put_parameter(Name="/app/hosts", Value="a,b", Type="StringList")
    ssm.put_parameter(Name="/app/db/password", Value="pw", Type="SecureString")
    ssm.put_parameter(Name="plain", Value="p", Type="String")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.put_parameter(Name="/app/url", Value="x", Type="String")
    assert code(exc) == "ParameterAlreadyExists"
    assert ssm.put_parameter(Name="/app/url", Value="http://b", Overwrite=True)["Version"] == 2
    assert ssm.get_parameter(Name="/app/url")["Parameter"]["Value"] == "http://b"
    assert ssm.get_parameter(Name="/app/url:1")["Parameter"]["Value"] == "http://a"
    secure = ssm.get_parameter(Name="/app/db/password")["Parameter"]
    assert secure["Type"] == "SecureString" and secure["Value"] != "pw"
    assert (
        ssm.get_parameter(Name="/app/db/password", WithDecryption=True)["Parameter"]["Value"]
        == "pw"
    )
    got = ssm.get_parameters(Names=["/app/url", "/nope"])
    assert [p["Name"] for p in got["Parameters"]] == ["/app/url"]
    assert got["InvalidParameters"] == ["/nope"]
    shallow = ssm.get_parameters_by_path(Path="/app")["Parameters"]
    assert sorted(p["Name"] for p in shallow) == ["/app/hosts", "/app/url"]
    deep = ssm.get_parameters_by_path(Path="/app", Recursive=True, WithDecryption=True)
    assert {p["Name"]: p["Value"] for p in deep["Parameters"]}["/app/db/password"] == "pw"
    described = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": ["/app/"]}]
    )["Parameters"]
    assert len(described) == 3
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.get_parameter(Name="/nope")
    assert code(exc) == "ParameterNotFound"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.put_parameter(Name="/aws/x", Value="v", Type="String")
    assert code(exc) == "ValidationException"
    ssm.delete_parameter(Name="plain")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.delete_parameter(Name="plain")
    assert code(exc) == "ParameterNotFound"
