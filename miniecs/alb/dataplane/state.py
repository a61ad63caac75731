"""``state.json``: what the control plane reads back (target health, in-flight, counters).

Written every 0.5 s to a temporary file in the same directory and renamed over the old one, so
a reader (``get_archive``) never sees a partial file. Counters are cumulative since the process
started; the control plane turns their differences into AWS/ApplicationELB datapoints.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from .plane import Plane

log = logging.getLogger(__name__)

WRITE_SECONDS = 0.5


def snapshot(plane: Plane, config_version: int | None) -> dict[str, Any]:
    """The state document for ``plane`` now."""
    targets: dict[str, list[dict[str, Any]]] = {}
    counters: dict[str, Any] = {}
    for arn, group in plane.groups.items():
        rows = []
        for target in group.targets.values():
            state, reason, description = target.view()
            rows.append(
                {
                    "ip": target.ip,
                    "port": target.port,
                    "state": state,
                    "reason": reason,
                    "description": description,
                    "in_flight": target.in_flight,
                }
            )
        targets[arn] = rows
        codes = group.codes
        counters[arn] = {
            "requests": group.requests,
            "2xx": codes[2],
            "3xx": codes[3],
            "4xx": codes[4],
            "5xx": codes[5],
            "response_time_sum": round(group.response_time_sum, 6),
            "response_time_count": group.response_time_count,
            "target_errors": group.target_errors,
            "per_target": {t.key: t.requests for t in group.targets.values()},
        }
    counters["load_balancer"] = plane.counters.as_dict()
    return {
        "config_version": config_version,
        "time": round(time.time(), 3),
        "targets": targets,
        "counters": counters,
    }


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


async def write_loop(path: str, document: Callable[[], dict[str, Any]]) -> None:
    """Write the state document every :data:`WRITE_SECONDS`, forever."""
    while True:
        try:
            write_atomic(path, json.dumps(document(), separators=(",", ":")).encode())
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc)
        await asyncio.sleep(WRITE_SECONDS)
