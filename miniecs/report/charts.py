"""The report's charts as PNG bytes, drawn with matplotlib's Agg canvas (no display, no pyplot
state, safe in any thread): per-task CPU with the service average over it, desired/running
count with scaling activities, and requests per task by load run, direct against via the ALB."""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from miniecs.report.data import Phase, ReportData

WIDTH, HEIGHT, DPI = 10.0, 4.2, 100
BAND_COLOURS = ("#f2f4f8", "#e4e9f2")
ROUTING_COLOURS = {"direct": ("#d9480f", "#f08c00", "#e8590c"), "alb": ("#1864ab", "#1c7ed6")}
TASK_COLOURS = (
    "#e8590c", "#2b8a3e", "#1971c2", "#9c36b5", "#c2255c", "#0c8599", "#5c940d", "#a61e4d",
)  # fmt: skip


def _figure() -> tuple[Figure, Axes]:
    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _bands(ax: Axes, phases: Sequence[Phase], t_max: float) -> None:
    """Shade each phase and name it at the top of the plot."""
    for i, p in enumerate(phases):
        end = p.end if p.end is not None else t_max
        ax.axvspan(p.start, end, color=BAND_COLOURS[i % 2], zorder=0, lw=0)
        ax.text(
            (p.start + end) / 2,
            1.0,
            p.name,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=8,
            color="#495057",
            clip_on=False,
        )


def _t_min(data: ReportData) -> float:
    """Where the time axis starts: the first phase or sample (set-up before it is not shown)."""
    times = [p.start for p in data.phases] + [s.t for s in data.samples]
    return max(0.0, min(times, default=0.0) - 0.5)


def _t_max(data: ReportData) -> float:
    times = [s.t for s in data.samples] + [a.t for a in data.activities]
    times += [p.end for p in data.phases if p.end is not None] + [r.t_end for r in data.loads]
    return max(times, default=1.0)


def cpu_chart(data: ReportData) -> bytes:
    """Per-task CPU (% of the task's reservation) over time, the service average over it."""
    fig, ax = _figure()
    t_max = _t_max(data)
    _bands(ax, data.phases, t_max)
    for i, task_id in enumerate(data.task_order()):
        points = [
            (s.t, cpu)
            for s in data.samples
            if task_id in s.tasks and (cpu := s.tasks[task_id].cpu_percent) is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(
                xs,
                ys,
                color=TASK_COLOURS[i % len(TASK_COLOURS)],
                lw=1.2,
                marker=".",
                ms=3,
                label=f"task {task_id[:8]}",
            )
    average = [(s.t, s.service_cpu_avg) for s in data.samples if s.service_cpu_avg is not None]
    if average:
        xs, ys = zip(*average, strict=True)
        ax.plot(xs, ys, color="black", lw=2.4, ls="--", label="service average (AWS/ECS)")
    ax.set_xlim(_t_min(data), t_max)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds since the demo started")
    ax.set_ylabel("CPU, % of task reservation")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside right upper", fontsize=8)
    return _png(fig)


def count_chart(data: ReportData) -> bytes:
    """Desired and running task count over time, each scaling activity a numbered line."""
    fig, ax = _figure()
    t_max = _t_max(data)
    _bands(ax, data.phases, t_max)
    if data.samples:
        ts = [s.t for s in data.samples]
        ax.step(ts, [s.desired for s in data.samples], where="post", lw=2, label="desired")
        ax.step(ts, [s.running for s in data.samples], where="post", lw=2, ls="--", label="running")
    top = max([s.desired for s in data.samples] + [s.running for s in data.samples] + [1])
    for n, a in enumerate(data.activities, 1):
        ax.axvline(a.t, color="#c92a2a", lw=1, alpha=0.7)
        ax.annotate(
            str(n),
            (a.t, top + 0.35),
            ha="center",
            fontsize=8,
            color="white",
            bbox={"boxstyle": "circle,pad=0.2", "fc": "#c92a2a", "ec": "none"},
        )
    ax.set_xlim(_t_min(data), t_max)
    ax.set_ylim(-0.2, top + 0.8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("seconds since the demo started")
    ax.set_ylabel("tasks")
    ax.grid(alpha=0.3)
    if data.samples:
        fig.legend(loc="outside right upper", fontsize=8)
    return _png(fig)


def requests_chart(data: ReportData) -> bytes:
    """Requests each task served, one bar per load run, grouped by task: orange direct,
    blue via the ALB."""
    fig, ax = _figure()
    # Tasks that served requests, and those that ran idle beside them (the point of the chart).
    served = {t for r in data.loads for t, n in r.requests_per_task.items() if n}
    shown = served.union(*(data.running_during(r) for r in data.loads))
    tasks = [t for t in data.task_order() if t in shown]
    if not data.loads or not tasks:
        ax.text(0.5, 0.5, "no load runs recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)
    width = 0.8 / len(data.loads)
    used = {"direct": 0, "alb": 0}
    for i, run in enumerate(data.loads):
        palette = ROUTING_COLOURS[run.routing]
        colour = palette[used[run.routing] % len(palette)]
        used[run.routing] += 1
        counts = [run.requests_per_task.get(t, 0) for t in tasks]
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(tasks))]
        via = "direct" if run.routing == "direct" else "via the ALB"
        bars = ax.bar(xs, counts, width * 0.92, color=colour, label=f"{run.phase}: {via}")
        ax.bar_label(bars, fontsize=7, padding=1)
    ax.set_xticks(range(len(tasks)), [t[:8] for t in tasks])
    ax.set_xlabel("task")
    ax.set_ylabel("requests served")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    return _png(fig)


CHARTS = {
    "cpu-per-task.png": cpu_chart,
    "task-count.png": count_chart,
    "requests-per-task.png": requests_chart,
}
"""File name → chart function, in the order the page shows them."""
