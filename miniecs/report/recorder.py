"""Recorder: the demo's side of the report. It stamps everything with seconds since the start,
tags it with the current phase, and can poll the service in a background thread while a phase
runs. Thread-safe: the sampling thread and the demo record at the same time."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from miniecs.report.data import (
    LoadRun,
    Phase,
    ReportData,
    Routing,
    Sample,
    ScalingActivity,
    TaskSample,
)


@dataclass(frozen=True, slots=True)
class Observation:
    """What a poll of the service returns: the fields of a `Sample` but its time and phase."""

    desired: int
    running: int
    service_cpu_avg: float | None
    tasks: Mapping[str, TaskSample]


class Recorder:
    """Builds a `ReportData` as the demo runs; `render()` writes the report folder."""

    def __init__(
        self,
        title: str = "miniecs demo",
        clock_speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        started_at: datetime | None = None,
    ) -> None:
        self._monotonic = monotonic
        self._origin = monotonic()
        self._lock = threading.Lock()
        started = started_at or datetime.now(UTC)
        self.data = ReportData(
            title=title,
            started_at=started.isoformat(timespec="seconds"),
            clock_speed=clock_speed,
        )

    def now(self) -> float:
        """Seconds since the recording started."""
        return round(self._monotonic() - self._origin, 3)

    @property
    def current_phase(self) -> str:
        with self._lock:
            phases = self.data.phases
            return phases[-1].name if phases and phases[-1].end is None else ""

    def begin_phase(self, name: str, title: str = "", observations: Sequence[str] = ()) -> None:
        """Close the running phase, if any, and start `name`."""
        with self._lock:
            if any(p.name == name for p in self.data.phases):
                raise ValueError(f"phase {name!r} was already recorded")
            now = self.now()
            self._close(now)
            self.data.phases.append(Phase(name, title, now, None, list(observations)))

    def end_phase(self) -> None:
        with self._lock:
            self._close(self.now())

    @contextlib.contextmanager
    def phase(self, name: str, title: str = "", observations: Sequence[str] = ()) -> Iterator[None]:
        """`with recorder.phase("pinned", "Scaling adds tasks, not load", ["O3"]):`"""
        self.begin_phase(name, title, observations)
        try:
            yield
        finally:
            self.end_phase()

    def _close(self, now: float) -> None:
        if self.data.phases and self.data.phases[-1].end is None:
            self.data.phases[-1].end = now

    def sample(
        self,
        desired: int,
        running: int,
        service_cpu_avg: float | None,
        tasks: Mapping[str, TaskSample] | None = None,
    ) -> Sample:
        """Record the service now, in the current phase."""
        sample = Sample(
            t=self.now(),
            phase=self.current_phase,
            desired=desired,
            running=running,
            service_cpu_avg=service_cpu_avg,
            tasks=dict(tasks or {}),
        )
        with self._lock:
            self.data.samples.append(sample)
        return sample

    def activity(self, description: str, cause: str, t: float | None = None) -> ScalingActivity:
        """Record a scaling activity at `t` (default now), e.g. one DescribeScalingActivities
        returned, with its Description and Cause."""
        activity = ScalingActivity(self.now() if t is None else t, description, cause)
        with self._lock:
            self.data.activities.append(activity)
        return activity

    def load(
        self, result: Mapping[str, Any], routing: Routing, t_start: float, phase: str | None = None
    ) -> LoadRun:
        """Record a finished load run (load.py's JSON report) that started at `t_start`."""
        run = LoadRun(
            phase=self.current_phase if phase is None else phase,
            routing=routing,
            t_start=t_start,
            t_end=self.now(),
            result=dict(result),
        )
        with self._lock:
            self.data.loads.append(run)
        return run

    def note(self, text: str) -> None:
        with self._lock:
            self.data.notes.append(text)

    @contextlib.contextmanager
    def sampling(
        self,
        poll: Callable[[], Observation | None],
        interval: float = 1.0,
        on_error: Callable[[Exception], None] | None = None,
    ) -> Iterator[None]:
        """Call `poll` every `interval` real seconds in a thread and record what it returns
        (None: nothing this time) until the block exits. A failing poll is reported to
        `on_error` and sampling goes on."""
        stop = threading.Event()

        def loop() -> None:
            while True:
                try:
                    seen = poll()
                except Exception as exc:  # the demo's own I/O: report it, keep sampling
                    if on_error is not None:
                        on_error(exc)
                    seen = None
                if seen is not None:
                    self.sample(seen.desired, seen.running, seen.service_cpu_avg, seen.tasks)
                if stop.wait(interval):
                    return

        thread = threading.Thread(target=loop, name="report-sampler", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(interval + 30)

    def render(self, folder: Path) -> Path:
        """Write the report folder; returns the path of report.html."""
        from miniecs.report.render import render_report

        with self._lock:
            self._close(self.now())
            snapshot = ReportData.from_json(self.data.to_json())
        return render_report(folder, snapshot)
