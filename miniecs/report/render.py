"""Write a report folder from `ReportData`: the PNG charts, a self-contained `report.html`
(inline CSS, charts embedded as data URIs, no script: it opens offline) and the raw data
(`timeline.json`, `samples.csv`, `load.json`)."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

from miniecs.report.charts import CHARTS
from miniecs.report.data import ReportData, SummaryRow

CSS = """
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1060px;
padding:0 1rem;color:#212529}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #dee2e6;padding-bottom:.2rem}
.meta{color:#6c757d}figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #dee2e6}
figcaption{color:#495057;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #dee2e6;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f1f3f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f1f3f5;padding:0 .2rem}
"""

CAPTIONS = {
    "cpu-per-task.png": (
        "Per-task CPU (% of each task's reservation) and, dashed, the service average that "
        "AWS/ECS CPUUtilization reports and target tracking acts on. Shaded bands are phases."
    ),
    "task-count.png": (
        "Desired and running task count; each numbered red line is a scaling activity "
        "(listed below)."
    ),
    "requests-per-task.png": (
        "Requests each task served in each load run: direct (a client pinned to one task IP) "
        "against via the ALB's listener."
    ),
}
RAW_FILES = ("timeline.json", "samples.csv", "load.json")
DASH = "\N{EN DASH}"
NA = DASH
"""Shown where there is no value."""


def render_report(folder: Path, data: ReportData | Mapping[str, Any]) -> Path:
    """Write the report into `folder` (created if needed); returns the path of report.html.
    `data` is a `ReportData` or its JSON form (see `miniecs.report.data`)."""
    if not isinstance(data, ReportData):
        data = ReportData.from_json(data)
    folder.mkdir(parents=True, exist_ok=True)
    pngs = {name: draw(data) for name, draw in CHARTS.items()}
    for name, png in pngs.items():
        (folder / name).write_bytes(png)
    document = data.to_json()
    (folder / "timeline.json").write_text(json.dumps(document, indent=1) + "\n")
    (folder / "load.json").write_text(json.dumps(document["loads"], indent=1) + "\n")
    (folder / "samples.csv").write_text(samples_csv(data))
    page = folder / "report.html"
    page.write_text(html(data, pngs))
    return page


def samples_csv(data: ReportData) -> str:
    """One row per task per sample (a sample without tasks gives one row with no task)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "t",
            "phase",
            "desired",
            "running",
            "service_cpu_avg",
            "task_id",
            "cpu_percent",
            "memory_percent",
            "ip",
        ]
    )
    for s in data.samples:
        head = [s.t, s.phase, s.desired, s.running, _blank(s.service_cpu_avg)]
        if not s.tasks:
            writer.writerow([*head, "", "", "", ""])
        for task_id, ts in s.tasks.items():
            writer.writerow(
                [*head, task_id, _blank(ts.cpu_percent), _blank(ts.memory_percent), ts.ip]
            )
    return out.getvalue()


def _blank(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _pct(value: float | None) -> str:
    return NA if value is None else f"{value:.1f} %"


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{escape(c)}</td>' if i in numeric else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_cells(row: SummaryRow) -> list[str]:
    spread = (
        NA
        if row.cpu_spread is None
        else f"{row.task_cpu_min:.0f}{DASH}{row.task_cpu_max:.0f} % (Δ {row.cpu_spread:.0f})"
    )
    requests = " / ".join(str(n) for _, n in row.requests_per_task) or NA
    return [
        row.title,
        row.tasks_text,
        _pct(row.service_cpu_avg),
        spread,
        requests,
        row.routing or NA,
    ]


def _load_rows(data: ReportData) -> list[list[str]]:
    rows = []
    for run in data.loads:
        r = run.result
        lat = r.get("latencyMs") or {}
        per_task = ", ".join(f"{t[:8]}: {n}" for t, n in run.requests_per_task.items()) or NA
        statuses = ", ".join(f"{k}: {v}" for k, v in (r.get("statuses") or {}).items()) or NA
        rows.append(
            [
                run.phase,
                run.routing,
                f"{run.t_start:.0f}{DASH}{run.t_end:.0f} s",
                str(r.get("requests", NA)),
                str(r.get("errors", NA)),
                statuses,
                " / ".join(f"{lat[k]:.1f}" for k in ("p50", "p90", "p99") if k in lat) or NA,
                per_task,
            ]
        )
    return rows


def html(data: ReportData, pngs: Mapping[str, bytes]) -> str:
    """The page: summary first, then the charts (embedded), activities, load runs, raw data."""
    titles = data.phase_titles()
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(data.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(data.title)}</h1>",
        f'<p class="meta">started {escape(data.started_at)} · control-plane clock '
        f"x{data.clock_speed:g} · {len(data.samples)} samples · "
        f"{len(data.loads)} load runs</p>",
        "<h2>Summary</h2>",
        _table(
            [
                "phase",
                "tasks",
                "service avg CPU",
                f"per-task CPU (min{DASH}max)",
                "requests per task",
                "routing",
            ],
            (_summary_cells(r) for r in data.summary()),
            {1, 2, 4},
        ),
    ]
    if data.notes:
        parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in data.notes) + "</ul>")
    parts.append("<h2>Charts</h2>")
    for name, png in pngs.items():
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img src="{uri}" alt="{escape(name)}" data-file="{escape(name)}">'
            f"<figcaption>{escape(CAPTIONS.get(name, ''))} "
            f'(<a href="{escape(name)}">{escape(name)}</a>)</figcaption></figure>'
        )
    parts.append("<h2>Phases</h2>")
    parts.append(
        _table(
            ["phase", "title", "from", "to", "observations"],
            (
                [
                    p.name,
                    titles[p.name],
                    f"{p.start:.0f} s",
                    NA if p.end is None else f"{p.end:.0f} s",
                    ", ".join(p.observations),
                ]
                for p in data.phases
            ),
            {2, 3},
        )
    )
    parts.append("<h2>Scaling activities</h2>")
    parts.append(
        _table(
            ["#", "t", "description", "cause"],
            (
                [str(n), f"{a.t:.0f} s", a.description, a.cause]
                for n, a in enumerate(data.activities, 1)
            ),
            {0, 1},
        )
        if data.activities
        else "<p>none</p>"
    )
    parts.append("<h2>Load runs</h2>")
    parts.append(
        _table(
            [
                "phase",
                "routing",
                "when",
                "requests",
                "errors",
                "statuses",
                "latency p50/p90/p99 ms",
                "requests per task",
            ],
            _load_rows(data),
            {3, 4},
        )
        if data.loads
        else "<p>none</p>"
    )
    parts.append("<h2>Raw data</h2><ul>")
    parts += [f'<li><a href="{f}">{f}</a></li>' for f in RAW_FILES]
    parts.append("</ul></body></html>\n")
    return "\n".join(parts)
