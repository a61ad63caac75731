"""A task's newest log lines, read from CloudWatch Logs the way `aws logs get-log-events` would:
the streams its containers' awslogs (or FireLens CloudWatch) configuration names. The web
console follows a task's output through this."""

from __future__ import annotations

from typing import Any

from miniecs.logs.awslogs import awslogs_target
from miniecs.logs.store import LogStore, NoSuchGroup, NoSuchStream
from miniecs.store import Store


class TaskLogTail:
    """`tail(cluster, task_id, limit)` over the ECS store (which streams) and the log store."""

    def __init__(self, store: Store, logs: LogStore) -> None:
        self.store = store
        self.logs = logs

    def tail(self, cluster: str, task_id: str, limit: int) -> list[dict[str, Any]]:
        """Newest `limit` events of the task's log streams, oldest first, each with
        `timestamp` (epoch ms), `message` and `logStreamName`; [] for an unknown task or one
        whose containers keep Docker's own logs."""
        task = self.store.get_task(task_id)
        if task is None or task.cluster != cluster:
            return []
        family, _, revision = task.task_definition_arn.rpartition("/")[2].rpartition(":")
        td = self.store.get_task_definition(family, int(revision))
        if td is None:
            return []
        events: list[dict[str, Any]] = []
        for container in td.document.get("containerDefinitions") or ():
            target = awslogs_target(container, task_id)
            if target is None or not target.group:
                continue
            try:
                found = self.logs.stream_events(
                    target.group, target.stream, None, None, None, None, limit, forward=False
                )
            except (NoSuchGroup, NoSuchStream):
                continue
            events += (
                {"timestamp": e.timestamp, "message": e.message, "logStreamName": target.stream}
                for e in found
            )
        events.sort(key=lambda e: int(e["timestamp"]))
        return events[-limit:]
