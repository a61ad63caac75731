"""miniecs.loadgen's pure parts: load.py's arguments, URL targets, task IPs, the rich tables."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from miniecs import loadgen


def test_spec_arguments() -> None:
    assert loadgen.LoadSpec().args() == ["--duration", "10", "--connections", "1", "--timeout", "5"]
    spec = loadgen.LoadSpec(duration=2.5, requests=100, rate=50, connections=8, work_ms=20)
    assert spec.args() == [
        "--duration", "2.5", "--connections", "8", "--timeout", "5",
        "--requests", "100", "--rate", "50", "--ms", "20",
    ]  # fmt: skip


def test_url_targets_use_the_host_network_and_resolve_names_here() -> None:
    target = loadgen.url_target("http://localhost:8080/work")
    assert target.network == "host" and target.routing == "alb"
    assert target.extra_hosts == {"localhost": "127.0.0.1"}
    assert loadgen.url_target("http://127.0.0.1:81/").extra_hosts == {}
    assert loadgen.url_target("http://x.invalid/", network="bridge").network == "bridge"
    with pytest.raises(loadgen.LoadError, match="only http://"):
        loadgen.url_target("https://example.com/")


def test_task_ip_from_the_eni_attachment() -> None:
    task = {
        "attachments": [
            {"type": "ElasticNetworkInterface", "details": [
                {"name": "subnetId", "value": "subnet-miniecs"},
                {"name": "privateIPv4Address", "value": "10.1.2.3"},
            ]}
        ]
    }  # fmt: skip
    assert loadgen.task_ip(task) == "10.1.2.3"
    assert loadgen.task_ip({"attachments": []}) is None


def test_report_tables() -> None:
    report = {
        "targets": ["http://10.0.0.2:8080/work"], "mode": "closed", "connections": 2,
        "rate": None, "elapsed": 1.0, "stoppedBy": "duration", "requests": 30,
        "responses": 30, "ok": 30, "rps": 30.0, "statuses": {"200": 30},
        "errorKinds": {"connect": 0}, "dropped": 0, "tasks": {"t1": 20, "t2": 10},
        "latencyMs": {"p50": 1.0, "p90": 2.0, "p99": 3.0, "max": 4.0, "mean": 1.5},
        "routing": "direct",
    }  # fmt: skip
    out = io.StringIO()
    console = Console(file=out, width=120)
    for table in loadgen.report_tables(report):
        console.print(table)
    text = out.getvalue()
    assert "load via direct" in text and "closed loop, 2 connection(s)" in text
    assert "66.7%" in text and "33.3%" in text
    assert "1.00 / 2.00 / 3.00 / 4.00 ms" in text
