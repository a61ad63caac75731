"""The demo's report: data model round trip, summary, and a rendered folder whose PNGs decode,
whose page embeds them and opens offline (checked in headless Chromium when installed)."""

from __future__ import annotations

import base64
import csv
import io
import json
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from miniecs.report import Observation, Recorder, ReportData, TaskSample, render_report
from miniecs.report.charts import CHARTS

TASKS = ["aaaa1111bbbb", "cccc2222dddd", "eeee3333ffff"]


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def load_result(tasks: dict[str, int]) -> dict[str, Any]:
    total = sum(tasks.values())
    return {
        "targets": ["http://10.0.0.2:8080/work"],
        "mode": "closed",
        "connections": 4,
        "rate": None,
        "ms": 5.0,
        "duration": 5.0,
        "limit": None,
        "elapsed": 5.0,
        "stoppedBy": "duration",
        "requests": total,
        "responses": total,
        "ok": total,
        "errors": 0,
        "errorKinds": {},
        "dropped": 0,
        "rps": total / 5,
        "statuses": {"200": total},
        "tasks": tasks,
        "urls": {},
        "latencyMs": {"p50": 5.5, "p90": 7.0, "p99": 9.0, "max": 12.0, "mean": 5.9},
    }


def synthetic() -> ReportData:
    """The study's story: one task, pinned load and a scale-out to 3, the ALB, then zero."""
    clock = FakeTime()
    rec = Recorder(title="synthetic <demo>", clock_speed=10, monotonic=clock)

    def tick(desired: int, cpus: list[float], avg: float | None = None) -> None:
        clock.now += 2
        tasks = {
            TASKS[i]: TaskSample(cpu, 20.0 + i, f"10.0.0.{i + 2}") for i, cpu in enumerate(cpus)
        }
        mean = sum(cpus) / len(cpus) if cpus else None
        rec.sample(desired, len(cpus), mean if avg is None else avg, tasks)

    with rec.phase("baseline", "1 task, no load", ["O1", "O2"]):
        for _ in range(3):
            tick(1, [1.0])
    with rec.phase("pinned", "pinned client, scale-out", ["O3", "O4", "O5"]):
        start = rec.now()
        for _ in range(3):
            tick(1, [99.0])
        rec.activity("Setting desired count to 3.", "monitor alarm AlarmHigh in state ALARM")
        for _ in range(6):
            tick(3, [99.0, 1.0, 1.5])
        rec.load(load_result({TASKS[0]: 900}), "direct", start)
    with rec.phase("alb", "via the ALB", ["O8", "O9"]):
        start = rec.now()
        for _ in range(6):
            tick(3, [40.0, 38.0, 41.0])
        rec.load(load_result({TASKS[0]: 310, TASKS[1]: 300, TASKS[2]: 305}), "alb", start)
    with rec.phase("zero", "desired count 0", ["O12"]):
        rec.activity("Setting desired count to 0.", "UpdateService by the demo")
        tick(0, [])
        tick(0, [])
    rec.note("a note & an <angle>")
    return rec.data


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.remote: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "img":
            self.images.append(attr)
        if tag == "a" and attr.get("href"):
            self.links.append(str(attr["href"]))
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            value = attr.get(key) or ""
            if value.startswith(("http:", "https:", "//")):
                self.remote.append(value)


def test_json_round_trip_and_summary() -> None:
    data = synthetic()
    document = json.loads(json.dumps(data.to_json()))
    assert document["version"] == 1
    assert set(document["samples"][0]) == {
        "t",
        "phase",
        "desired",
        "running",
        "service_cpu_avg",
        "tasks",
    }
    assert set(document["samples"][0]["tasks"][TASKS[0]]) == {"cpu_percent", "memory_percent", "ip"}
    assert ReportData.from_json(document) == data
    rows = {r.phase: r for r in data.summary()}
    assert list(rows) == ["baseline", "pinned", "alb", "zero"]
    pinned = rows["pinned"]
    assert pinned.tasks == 3
    assert pinned.requests_per_task == [(TASKS[0], 900), (TASKS[1], 0), (TASKS[2], 0)]
    assert pinned.task_cpu_max == pytest.approx(99.0)
    assert pinned.task_cpu_min == pytest.approx(1.0)
    assert pinned.routing == "direct"
    assert rows["alb"].cpu_spread == pytest.approx(3.0)
    assert [n for _, n in rows["alb"].requests_per_task] == [310, 305, 300]
    assert rows["zero"].tasks == 0 and rows["zero"].service_cpu_avg is None
    assert rows["pinned"].running_counts == [1, 3]
    assert rows["pinned"].tasks_text == "1 → 3" and rows["alb"].tasks_text == "3"
    assert data.phases[0].end == data.phases[1].start
    # The idle tasks of the pinned run are in the requests chart with 0, beside the busy one.
    assert data.running_during(data.loads[0]) == set(TASKS[:3])


@pytest.mark.parametrize(
    "bad",
    [
        {"version": 2},
        {"samples": [{"t": 1}]},
        {"loads": [{"phase": "x", "routing": "nlb", "t_start": 0, "t_end": 1, "result": {}}]},
    ],
)
def test_malformed_json_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"version|malformed|routing"):
        ReportData.from_json(bad)


def test_phase_names_are_unique() -> None:
    rec = Recorder()
    rec.begin_phase("a")
    with pytest.raises(ValueError, match="already recorded"):
        rec.begin_phase("a")


def test_sampling_thread_records_until_the_block_ends() -> None:
    rec = Recorder()
    errors: list[Exception] = []
    polls = iter([RuntimeError("engine busy")])

    def poll() -> Observation:
        for exc in polls:
            raise exc
        return Observation(2, 1, 50.0, {"t1": TaskSample(50.0, 10.0, "10.0.0.9")})

    with rec.phase("p"), rec.sampling(poll, interval=0.01, on_error=errors.append):
        deadline = time.monotonic() + 5
        while len(rec.data.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    count = len(rec.data.samples)
    time.sleep(0.05)
    assert count >= 3 and len(rec.data.samples) == count
    assert [str(e) for e in errors] == ["engine busy"]
    assert {s.phase for s in rec.data.samples} == {"p"}


def test_render_report_folder(tmp_path: Path) -> None:
    data = synthetic()
    page = render_report(tmp_path / "report", data.to_json())
    folder = page.parent
    assert page.name == "report.html"
    for name in CHARTS:
        with Image.open(folder / name) as img:
            img.load()
            assert img.format == "PNG"
            assert img.size == (1000, 420)
            colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is not None and len(colours) > 50  # drawn, not blank
    text = page.read_text()
    parser = Page()
    parser.feed(text)
    assert parser.scripts == 0 and parser.remote == []
    embedded = {str(i["data-file"]): str(i["src"]) for i in parser.images}
    assert set(embedded) == set(CHARTS)
    for name, src in embedded.items():
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix) :]) == (folder / name).read_bytes()
    for link in parser.links:
        assert (folder / link).is_file(), link
    assert {"timeline.json", "samples.csv", "load.json"} <= set(parser.links)
    assert "synthetic &lt;demo&gt;" in text and "a note &amp; an &lt;angle&gt;" in text
    assert "1\N{EN DASH}99 % (Δ 98)" in text
    assert ReportData.from_json(json.loads((folder / "timeline.json").read_text())) == data
    loads = json.loads((folder / "load.json").read_text())
    assert [r["routing"] for r in loads] == ["direct", "alb"]
    rows = list(csv.DictReader(io.StringIO((folder / "samples.csv").read_text())))
    assert len(rows) == sum(max(1, len(s.tasks)) for s in data.samples)
    assert rows[0]["phase"] == "baseline" and rows[0]["task_id"] == TASKS[0]


def test_render_empty_report(tmp_path: Path) -> None:
    page = render_report(tmp_path, ReportData())
    for name in CHARTS:
        with Image.open(tmp_path / name) as img:
            img.load()
    assert "<h2>Summary</h2>" in page.read_text()


CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium installed")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = render_report(tmp_path / "report", synthetic())
    shot = tmp_path / "shot.png"
    assert CHROMIUM is not None
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1100,2600",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert shot.is_file(), proc.stderr.decode(errors="replace")[-2000:]
    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        assert rgb.size == (1100, 2600)
        # The charts' plot lines make hundreds of colours; a page without images has few.
        colours = rgb.getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 200
