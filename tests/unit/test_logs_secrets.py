"""Pure parts of CloudWatch Logs, the awslogs driver and secret resolution, with fakes."""

from __future__ import annotations

import json

import pytest

from miniecs.errors import InvalidParameterException
from miniecs.logs.awslogs import AwslogsTarget, LogShipper, awslogs_target
from miniecs.logs.filter import parse_filter
from miniecs.logs.store import LogStore, NoSuchStream
from miniecs.runtime.docker import _LineAssembler, _timestamp_ns, parse_proc_limits
from miniecs.runtime.fake import FakeRuntime
from miniecs.secrets.resolve import SecretsUnavailable, resolve
from miniecs.secrets.store import CURRENT, SecretStore, SecretVersion
from miniecs.tasks.specs import clamp_ulimits


def test_filter_patterns_terms_phrases_any_and_exclusion() -> None:
    assert parse_filter("").matches("anything")
    p = parse_filter('ERROR "disk full"')
    assert p.matches("ERROR: disk full on /") and not p.matches("ERROR: disk is full")
    assert parse_filter("?WARN ?ERROR").matches("WARN x")
    assert not parse_filter("GET -health").matches("GET /health")
    assert not parse_filter("error").matches("ERROR")  # case-sensitive, as CloudWatch
    with pytest.raises(InvalidParameterException):
        parse_filter("{ $.level = 1 }")
    with pytest.raises(InvalidParameterException):
        parse_filter('"unbalanced')


def test_store_orders_by_timestamp_and_enforces_retention_and_cap() -> None:
    store = LogStore(max_bytes=10_000)
    store.create_group("g", 0)
    store.create_stream("g", "s", 0)
    with pytest.raises(NoSuchStream):
        store.append("g", "nope", [(1, "x")], 0)
    store.append("g", "s", [(5, "b"), (6, "c")], 10)
    store.append("g", "s", [(1, "a")], 11)
    got = store.stream_events("g", "s", None, None, None, None, 10, True)
    assert [e.message for e in got] == ["a", "b", "c"]
    newest = store.stream_events("g", "s", None, None, None, None, 2, False)
    assert [e.message for e in newest] == ["b", "c"]
    store.set_retention("g", 1)
    assert store.prune(86_400_000 + 6) == 2  # 'a' (ts 1) and 'b' (ts 5) are past a day
    store.append("g", "s", [(86_400_000 + i, "x" * 1000) for i in range(20)], 0)
    store.prune(86_400_000)
    assert store.stored_bytes() <= 10_000


def test_awslogs_target_names_streams_as_ecs() -> None:
    c = {
        "name": "web",
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": "/ecs/x", "awslogs-stream-prefix": "ecs"},
        },
    }
    assert awslogs_target(c, "abc") == AwslogsTarget("/ecs/x", "ecs/web/abc", False)
    firelens = {
        "name": "app",
        "logConfiguration": {
            "logDriver": "awsfirelens",
            "options": {"Name": "cloudwatch", "log_group_name": "g", "log_stream_prefix": "p/"},
        },
    }
    assert awslogs_target(firelens, "t1") == AwslogsTarget("g", "p/app-firelens-t1", False)
    assert awslogs_target({"name": "x"}, "t") is None


def test_reader_resumes_after_its_position_without_loss_or_duplicates() -> None:
    """Lines sharing a timestamp are counted, so a restart skips exactly those stored."""
    store = LogStore()
    store.create_group("g", 0)
    store.create_stream("g", "s", 0)
    runtime = FakeRuntime()
    base = 1_700_000_000 * 10**9
    runtime.output["c"] = [(base + i // 2, f"line {i}".encode()) for i in range(10)]
    target = AwslogsTarget("g", "s", False)

    def run_once(lines: int) -> None:
        runtime.output["c-view"] = runtime.output["c"][:lines]
        shipper = LogShipper(store, _Source(runtime, "c-view"), lambda: 0)
        shipper.start()
        shipper.follow("key", "c-view", target)
        assert shipper.finish("key", 5)
        shipper.stop()

    run_once(5)  # stops mid-way, between two lines of one timestamp
    run_once(10)
    got = [e.message for e in store.stream_events("g", "s", None, None, None, None, 100, True)]
    assert got == [f"line {i}" for i in range(10)]


class _Source:
    def __init__(self, runtime: FakeRuntime, name: str) -> None:
        self.runtime, self.name = runtime, name

    def log_lines(self, docker_name: str, since_s: int):  # type: ignore[no-untyped-def]
        return self.runtime.log_lines(self.name, since_s)

    def is_running(self, docker_name: str) -> bool:
        return False


def test_docker_frames_become_whole_lines_with_their_timestamps() -> None:
    lines = _LineAssembler()
    out = list(lines.frame(b"2024-05-01T10:00:00.5Z part one "))
    out += list(lines.frame(b"2024-05-01T10:00:00.6Z and two\n"))
    out += list(lines.frame(b"2024-05-01T10:00:01Z next\n"))
    assert [line for _, line in out] == [b"part one and two", b"next"]
    assert out[0][0] == _timestamp_ns(b"2024-05-01T10:00:00.5Z") == 1714557600_500_000_000


def test_secrets_resolve_json_keys_stages_and_parameters_or_stop_with_ecs_wording() -> None:
    store = SecretStore()
    arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf"
    store.create_secret(
        "db",
        arn,
        0,
        None,
        None,
        {},
        SecretVersion("v1", (CURRENT,), json.dumps({"u": "a"}), None, 0),
    )
    store.put_version("db", SecretVersion("v2", (CURRENT,), json.dumps({"u": "b"}), None, 1), 1)
    store.put_parameter("/p", "SecureString", "pv", 0, False, None, None, "Standard", "text", None)
    env = resolve(
        [
            {"name": "NOW", "valueFrom": f"{arn}:u::"},
            {"name": "BEFORE", "valueFrom": f"{arn}:u:AWSPREVIOUS:"},
            {"name": "BYID", "valueFrom": f"{arn}:u::v1"},
            {"name": "P", "valueFrom": "arn:aws:ssm:us-east-1:000000000000:parameter/p"},
        ],
        store,
    )
    assert env == {"NOW": "b", "BEFORE": "a", "BYID": "a", "P": "pv"}
    with pytest.raises(SecretsUnavailable) as exc:
        resolve([{"name": "X", "valueFrom": f"{arn}:missing::"}], store)
    assert "did not contain json key missing" in exc.value.reason
    with pytest.raises(SecretsUnavailable) as exc:
        resolve([{"name": "X", "valueFrom": "/a"}, {"name": "Y", "valueFrom": "/b"}], store)
    assert exc.value.reason.endswith("invalid ssm parameters: /a /b")


def test_ulimits_are_clamped_to_the_host_with_a_note() -> None:
    out, notes = clamp_ulimits(
        [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}], {"nofile": 20000}
    )
    assert out == [("nofile", 20000, 20000)] and "clamped to 20000:20000" in notes[0]
    assert clamp_ulimits([{"name": "core", "softLimit": 0, "hardLimit": 0}], {})[1] == []
    limits = "Max open files            1024                 20000                files\n"
    assert parse_proc_limits(limits) == {"nofile": 20000}
