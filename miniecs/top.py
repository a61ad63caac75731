"""`miniecs top`: a live terminal view of clusters, services and tasks from a running server.

It reads `GET /_miniecs/usage` over HTTP once a second and draws each service's desired,
running and pending counts and its average CPU and memory (AWS/ECS's figure) above every
task's own CPU and memory, so one hot task beside idle ones stands out from the average.
`--once --output json` prints the view for scripts.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

DEFAULT_ENDPOINT = "http://127.0.0.1:4566"
BAR_WIDTH = 12


class TopError(Exception):
    """The server could not be read."""


def fetch(endpoint: str, timeout: float = 5.0) -> dict[str, Any]:
    """The usage view of the server at `endpoint`."""
    url = endpoint.rstrip("/") + "/_miniecs/usage"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            view: dict[str, Any] = json.loads(response.read())
            return view
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TopError(f"cannot read {url}: {exc}") from None


def bar(percent: float | None, width: int = BAR_WIDTH) -> Text:
    """`percent` (0..100) as a coloured bar with its figure; a dash without a sample."""
    if percent is None:
        return Text("-".ljust(width + 7), style="dim")
    filled = max(0, min(width, round(percent / 100 * width)))
    style = "red" if percent >= 80 else "yellow" if percent >= 50 else "green"
    text = Text("█" * filled, style=style)
    text.append("░" * (width - filled), style="dim")
    text.append(f" {percent:5.1f}%")
    return text


def _containers(task: dict[str, Any]) -> str:
    parts = []
    for c in task.get("containers", []):
        cpu, mem = c.get("cpuUtilization"), c.get("memoryUtilization")
        if cpu is None:
            parts.append(f"{c['containerName']} -")
        else:
            parts.append(f"{c['containerName']} cpu {cpu:.0f}% mem {mem or 0:.0f}%")
    return ", ".join(parts)


def _task_rows(table: Table, tasks: list[dict[str, Any]], indent: str) -> None:
    for task in tasks:
        table.add_row(
            Text(f"{indent}{task['taskId']}", style="cyan"),
            task["lastStatus"],
            bar(task.get("cpuUtilization")),
            bar(task.get("memoryUtilization")),
            _containers(task),
        )


def render(view: dict[str, Any]) -> RenderableType:
    """The view as one table: a service row (counts, average) above its tasks' rows."""
    table = Table(expand=False, box=None, pad_edge=False, header_style="bold")
    table.add_column("CLUSTER / SERVICE / TASK", no_wrap=True)
    table.add_column("D/R/P", no_wrap=True)
    table.add_column("CPU", no_wrap=True)
    table.add_column("MEMORY", no_wrap=True)
    table.add_column("CONTAINERS", overflow="fold")
    for cluster in view.get("clusters", []):
        insights = cluster.get("containerInsights", "disabled")
        name = Text(cluster["clusterName"], style="bold magenta")
        name.append(f"  containerInsights={insights}", style="dim")
        table.add_row(name)
        for service in cluster.get("services", []):
            table.add_row(
                Text(f"  {service['serviceName']}", style="bold"),
                f"{service['desiredCount']}/{service['runningCount']}/{service['pendingCount']}",
                bar(service.get("cpuUtilization")),
                bar(service.get("memoryUtilization")),
                Text("service (AWS/ECS average)", style="dim"),
            )
            _task_rows(table, service.get("tasks", []), "    ")
        _task_rows(table, cluster.get("tasks", []), "  ")
    if not view.get("clusters"):
        table.add_row(Text("no clusters", style="dim"))
    clock = time.strftime("%H:%M:%S", time.gmtime(view.get("now", 0)))
    return Group(Text(f"miniecs top · control-plane clock {clock} UTC", style="bold"), table)


def run(
    endpoint: str,
    console: Console,
    once: bool = False,
    output: str = "table",
    interval: float = 1.0,
) -> None:
    """Print the view once (`output` json or table), or redraw it every `interval` seconds
    until interrupted; an unreachable server is shown and retried, not fatal, when live."""
    if once:
        view = fetch(endpoint)
        if output == "json":
            console.file.write(json.dumps(view, indent=2) + "\n")
        else:
            if not console.is_terminal:  # a pipe gets room for whole task ids and bars
                console.width = max(console.width, 160)
            console.print(render(view))
        return
    with Live(console=console, auto_refresh=False, screen=False) as live:
        while True:
            try:
                live.update(render(fetch(endpoint)), refresh=True)
            except TopError as exc:
                live.update(Text(str(exc), style="red"), refresh=True)
            time.sleep(interval)
