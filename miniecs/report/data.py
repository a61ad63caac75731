"""The demo's report data: what was measured, when, in which phase; pure and JSON-shaped.

The demo fills a `ReportData` (usually through `miniecs.report.recorder.Recorder`) and
`miniecs.report.render` turns it into a folder. `to_json()` / `from_json()` are exact inverses;
`timeline.json` holds this form::

    {
      "version": 1,
      "title": str,
      "started_at": str,              # ISO 8601 UTC wall time of t = 0
      "clock_speed": float,           # control-plane clock speed during the run
      "phases": [{"name": str, "title": str, "start": float, "end": float | null,
                  "observations": [str]}],           # e.g. ["O3", "O5"]
      "samples": [{"t": float, "phase": str, "desired": int, "running": int,
                   "service_cpu_avg": float | null,  # the AWS/ECS service CPUUtilization, %
                   "tasks": {task_id: {"cpu_percent": float | null,
                                       "memory_percent": float | null, "ip": str}}}],
      "activities": [{"t": float, "description": str, "cause": str}],
      "loads": [{"phase": str, "routing": "direct" | "alb", "t_start": float, "t_end": float,
                 "result": {...}}],                  # result: load.py's --json report
      "notes": [str]
    }

Every `t` is seconds of wall time since `started_at` (the demo's timeline, not the
control-plane clock). Task ids are ECS task ids (the last part of the task ARN), the keys
load.py's report uses in `result.tasks`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from statistics import fmean
from typing import Any, Literal, cast

VERSION = 1
Routing = Literal["direct", "alb"]
ROUTINGS: tuple[Routing, ...] = ("direct", "alb")


@dataclass(frozen=True, slots=True)
class TaskSample:
    """One task at one instant: its CPU and memory as % of its reservation, its private IP."""

    cpu_percent: float | None
    memory_percent: float | None
    ip: str


@dataclass(frozen=True, slots=True)
class Sample:
    """The service at one instant."""

    t: float
    phase: str
    desired: int
    running: int
    service_cpu_avg: float | None
    tasks: dict[str, TaskSample] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScalingActivity:
    """An Application Auto Scaling activity (or a desired-count change the demo made)."""

    t: float
    description: str
    cause: str


@dataclass(frozen=True, slots=True)
class LoadRun:
    """One run of the load generator: when, how it was routed, and load.py's JSON report."""

    phase: str
    routing: Routing
    t_start: float
    t_end: float
    result: dict[str, Any]

    @property
    def requests_per_task(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in (self.result.get("tasks") or {}).items()}


@dataclass(slots=True)
class Phase:
    """A stretch of the demo with one story; `end` is None while it runs."""

    name: str
    title: str
    start: float
    end: float | None = None
    observations: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One phase in the summary table.

    `tasks`: most tasks running at once; `running_counts`: the running count as it changed
    through the phase (e.g. [3, 0, 1]); `service_cpu_avg`: mean of the service average;
    `task_cpu_min`/`task_cpu_max`: lowest and highest per-task mean CPU (their difference is
    the spread the service average hides); `requests_per_task`: requests each task served in
    the phase's load runs, busiest first, 0 for running tasks that served none.
    """

    phase: str
    title: str
    tasks: int
    service_cpu_avg: float | None
    task_cpu_min: float | None
    task_cpu_max: float | None
    requests_per_task: list[tuple[str, int]]
    routing: str
    running_counts: list[int] = field(default_factory=list)

    @property
    def tasks_text(self) -> str:
        """`3`, or `3 → 0 → 1` when the count changed during the phase."""
        return " → ".join(map(str, self.running_counts)) or str(self.tasks)

    @property
    def cpu_spread(self) -> float | None:
        if self.task_cpu_min is None or self.task_cpu_max is None:
            return None
        return self.task_cpu_max - self.task_cpu_min


@dataclass(slots=True)
class ReportData:
    """Everything a report shows."""

    title: str = "miniecs demo"
    started_at: str = ""
    clock_speed: float = 1.0
    phases: list[Phase] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    activities: list[ScalingActivity] = field(default_factory=list)
    loads: list[LoadRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ReportData:
        """The inverse of `to_json`; raises ValueError on a malformed document."""
        try:
            if obj.get("version", VERSION) != VERSION:
                raise ValueError(f"unsupported report version {obj.get('version')!r}")
            return cls(
                title=str(obj.get("title", "miniecs demo")),
                started_at=str(obj.get("started_at", "")),
                clock_speed=float(obj.get("clock_speed", 1.0)),
                phases=[
                    Phase(
                        name=str(p["name"]),
                        title=str(p.get("title", "")),
                        start=float(p["start"]),
                        end=_opt_float(p.get("end")),
                        observations=[str(o) for o in p.get("observations", [])],
                    )
                    for p in obj.get("phases", [])
                ],
                samples=[
                    Sample(
                        t=float(s["t"]),
                        phase=str(s["phase"]),
                        desired=int(s["desired"]),
                        running=int(s["running"]),
                        service_cpu_avg=_opt_float(s.get("service_cpu_avg")),
                        tasks={
                            str(k): TaskSample(
                                cpu_percent=_opt_float(v.get("cpu_percent")),
                                memory_percent=_opt_float(v.get("memory_percent")),
                                ip=str(v.get("ip", "")),
                            )
                            for k, v in (s.get("tasks") or {}).items()
                        },
                    )
                    for s in obj.get("samples", [])
                ],
                activities=[
                    ScalingActivity(float(a["t"]), str(a["description"]), str(a.get("cause", "")))
                    for a in obj.get("activities", [])
                ],
                loads=[
                    LoadRun(
                        phase=str(r["phase"]),
                        routing=_routing(r["routing"]),
                        t_start=float(r["t_start"]),
                        t_end=float(r["t_end"]),
                        result=dict(r["result"]),
                    )
                    for r in obj.get("loads", [])
                ],
                notes=[str(n) for n in obj.get("notes", [])],
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed report data: {exc!r}") from None

    def phase_titles(self) -> dict[str, str]:
        return {p.name: p.title or p.name for p in self.phases}

    def task_order(self) -> list[str]:
        """Task ids in order of first appearance (samples, then load results)."""
        seen: dict[str, None] = {}
        for s in self.samples:
            seen.update(dict.fromkeys(s.tasks))
        for r in self.loads:
            seen.update(dict.fromkeys(r.requests_per_task))
        return list(seen)

    def running_during(self, run: LoadRun) -> set[str]:
        """Tasks seen running in the run's phase while it sent load (idle ones included)."""
        return {
            t
            for s in self.samples
            if s.phase == run.phase and run.t_start <= s.t <= run.t_end
            for t in s.tasks
        }

    def summary(self) -> list[SummaryRow]:
        """One row per phase, in phase order (phases known only from samples come last)."""
        names = [p.name for p in self.phases]
        names += [n for n in dict.fromkeys(s.phase for s in self.samples) if n not in names]
        titles = self.phase_titles()
        return [self._summary_row(name, titles.get(name, name)) for name in names]

    def _summary_row(self, name: str, title: str) -> SummaryRow:
        samples = [s for s in self.samples if s.phase == name]
        loads = [r for r in self.loads if r.phase == name]
        averages = [s.service_cpu_avg for s in samples if s.service_cpu_avg is not None]
        per_task: dict[str, list[float]] = {}
        for s in samples:
            for task_id, ts in s.tasks.items():
                if ts.cpu_percent is not None and math.isfinite(ts.cpu_percent):
                    per_task.setdefault(task_id, []).append(ts.cpu_percent)
        means = [fmean(v) for v in per_task.values()]
        requests: dict[str, int] = {}
        for r in loads:
            for task_id, n in r.requests_per_task.items():
                requests[task_id] = requests.get(task_id, 0) + n
        if requests:
            # Tasks that ran idle in this phase while the load ran count with 0.
            for task_id in {
                t
                for s in samples
                if any(r.t_start <= s.t <= r.t_end for r in loads)
                for t in s.tasks
            }:
                requests.setdefault(task_id, 0)
        counts = [s.running for s in samples]
        tasks = max(counts, default=len(requests))
        return SummaryRow(
            phase=name,
            title=title,
            tasks=tasks,
            service_cpu_avg=fmean(averages) if averages else None,
            task_cpu_min=min(means) if means else None,
            task_cpu_max=max(means) if means else None,
            requests_per_task=sorted(requests.items(), key=lambda kv: (-kv[1], kv[0])),
            routing=", ".join(dict.fromkeys(r.routing for r in loads)),
            running_counts=[n for i, n in enumerate(counts) if i == 0 or counts[i - 1] != n],
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _routing(value: Any) -> Routing:
    if value not in ROUTINGS:
        raise ValueError(f"routing must be one of {ROUTINGS}, not {value!r}")
    return cast(Routing, value)
