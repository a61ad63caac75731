"""The demo's report: a data model with a JSON form (`data`), a recorder the demo fills
(`recorder`), matplotlib charts (`charts`) and a folder renderer (`render`)."""

from miniecs.report.data import (
    LoadRun,
    Phase,
    ReportData,
    Sample,
    ScalingActivity,
    SummaryRow,
    TaskSample,
)
from miniecs.report.recorder import Observation, Recorder
from miniecs.report.render import render_report

__all__ = [
    "LoadRun",
    "Observation",
    "Phase",
    "Recorder",
    "ReportData",
    "Sample",
    "ScalingActivity",
    "SummaryRow",
    "TaskSample",
    "render_report",
]
