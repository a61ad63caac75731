"""`miniecs logs <task|service>`: a task's or a service's awslogs output from the endpoint's
CloudWatch Logs, printed and (with --follow) followed, as `aws logs tail --follow` does.

A client of the AWS endpoint like any other: ECS tells which tasks and containers, their task
definitions tell which log group and stream, FilterLogEvents reads them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.exceptions

LOOK_BACK_MS = 5000
"""Following re-reads this far behind the newest event printed (printed ones are skipped)."""


class LogsError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Source:
    group: str
    streams: tuple[str, ...]


def _client(service: str, endpoint_url: str, region: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="miniecs",
        aws_secret_access_key="miniecs",
    )


def sources(ecs: Any, cluster: str, target: str) -> list[Source]:
    """The log groups and streams of a task (id or ARN) or of a service's tasks."""
    task_arns: list[str] = []
    described = ecs.describe_services(cluster=cluster, services=[target]).get("services") or []
    if described and described[0].get("status") != "INACTIVE":
        for status in ("RUNNING", "STOPPED"):
            task_arns += ecs.list_tasks(
                cluster=cluster, serviceName=target, desiredStatus=status
            ).get("taskArns", [])
    else:
        task_arns = [target]
    if not task_arns:
        return []
    tasks = []
    for i in range(0, len(task_arns), 100):
        tasks += ecs.describe_tasks(cluster=cluster, tasks=task_arns[i : i + 100])["tasks"]
    if not tasks:
        raise LogsError(f"no task or service named {target} in cluster {cluster}")
    by_group: dict[str, list[str]] = {}
    definitions: dict[str, dict[str, Any]] = {}
    for task in tasks:
        arn = task["taskDefinitionArn"]
        if arn not in definitions:
            definitions[arn] = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        task_id = task["taskArn"].rsplit("/", 1)[1]
        for container in definitions[arn]["containerDefinitions"]:
            config = container.get("logConfiguration") or {}
            if config.get("logDriver") != "awslogs":
                continue
            options = config.get("options") or {}
            prefix = options.get("awslogs-stream-prefix")
            stream = (
                f"{prefix}/{container['name']}/{task_id}"
                if prefix
                else (f"{container['name']}/{task_id}")
            )
            by_group.setdefault(options["awslogs-group"], []).append(stream)
    return [Source(g, tuple(s)) for g, s in by_group.items()]


def run(
    endpoint_url: str,
    region: str,
    cluster: str,
    target: str,
    follow: bool,
    since_s: float,
    emit: Callable[[str], None],
    poll: float = 0.5,
) -> None:
    """Print the events since `since_s` seconds ago; with `follow`, keep printing new ones."""
    ecs = _client("ecs", endpoint_url, region)
    logs = _client("logs", endpoint_url, region)
    try:
        found = sources(ecs, cluster, target)
    except botocore.exceptions.ClientError as exc:
        raise LogsError(str(exc)) from None
    except botocore.exceptions.EndpointConnectionError as exc:
        raise LogsError(f"miniecs is not reachable at {endpoint_url}: {exc}") from None
    if not found:
        raise LogsError(f"{target}: no container of it logs with awslogs")
    start = int((time.time() - since_s) * 1000)
    seen: dict[str, int] = {}
    printed: set[str] = set()
    while True:
        for source in found:
            # look back: a container's lines may be stored after another's newer ones
            start_ms = max(start, seen.get(source.group, start) - LOOK_BACK_MS)
            for event in _events(logs, source, start_ms, printed):
                emit(_line(event))
                seen[source.group] = max(seen.get(source.group, start), event["timestamp"])
        if not follow:
            return
        time.sleep(poll)
        if target_is_service(ecs, cluster, target):
            found = sources(ecs, cluster, target)


def _events(logs: Any, source: Source, start_ms: int, printed: set[str]) -> list[dict[str, Any]]:
    """New events (not in `printed`) of the source's streams from `start_ms` on."""
    out = []
    streams = list(source.streams)
    for i in range(0, len(streams), 100):
        kwargs: dict[str, Any] = {
            "logGroupName": source.group,
            "logStreamNames": streams[i : i + 100],
            "startTime": start_ms,
        }
        while True:
            try:
                page = logs.filter_log_events(**kwargs)
            except logs.exceptions.ResourceNotFoundException:
                break
            for event in page["events"]:
                if event["eventId"] not in printed:
                    printed.add(event["eventId"])
                    out.append(event)
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
    out.sort(key=lambda e: (e["timestamp"], e["eventId"]))
    return out


def target_is_service(ecs: Any, cluster: str, target: str) -> bool:
    services = ecs.describe_services(cluster=cluster, services=[target]).get("services") or []
    return bool(services) and services[0].get("status") != "INACTIVE"


def _line(event: dict[str, Any]) -> str:
    when = dt.datetime.fromtimestamp(event["timestamp"] / 1000, dt.UTC)
    return f"{when.isoformat(timespec='milliseconds')} {event['logStreamName']} {event['message']}"
