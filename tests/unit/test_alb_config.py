"""config.json: parsing, validation, and the poller that applies only newer valid versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from miniecs.alb.dataplane.config import (
    Config,
    ConfigError,
    ConfigWatcher,
    HealthCheck,
    TargetSpec,
    parse,
    parse_matcher,
)

DOC: dict[str, Any] = {
    "version": 7,
    "speed": 10.0,
    "bind": "127.0.0.1",
    "idle_timeout": 60,
    "listeners": [
        {
            "arn": "l1",
            "port": 8080,
            "default_actions": [{"Type": "forward", "TargetGroupArn": "tg"}],
            "rules": [
                {
                    "arn": "r",
                    "priority": 10,
                    "conditions": [{"Field": "path-pattern", "Values": ["/a"]}],
                    "actions": [{"Type": "forward", "TargetGroupArn": "tg"}],
                }
            ],
        }
    ],
    "target_groups": [
        {
            "arn": "tg",
            "name": "web",
            "port": 8080,
            "health_check": {
                "enabled": True,
                "protocol": "HTTP",
                "port": "traffic-port",
                "path": "/health",
                "interval": 30,
                "timeout": 5,
                "healthy_threshold": 5,
                "unhealthy_threshold": 2,
                "matcher": "200-299",
            },
            "algorithm": "least_outstanding_requests",
            "slow_start": 0,
            "targets": [{"ip": "10.99.0.5", "port": 8080, "draining": False}],
        }
    ],
}


def test_the_contract_example_parses() -> None:
    config = parse(json.dumps(DOC))
    assert (config.version, config.speed, config.idle_timeout) == (7, 10.0, 60.0)
    (group,) = config.target_groups
    assert group.algorithm == "least_outstanding_requests"
    assert group.health_check == HealthCheck(path="/health", matcher="200-299")
    assert group.targets == (TargetSpec("10.99.0.5", 8080, False),)
    assert config.listeners[0].rules[0].priority == 10
    assert config.limits.max_head_bytes == 64 * 1024


def test_defaults() -> None:
    config = parse('{"version": 1}')
    assert config == Config(version=1)


def with_change(path: str, value: Any) -> str:
    doc = json.loads(json.dumps(DOC))
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("version", "7", "version"),
        ("speed", 0, "speed"),
        ("idle_timeout", -1, "idle_timeout"),
        ("listeners.0.port", 70000, "port"),
        ("listeners.0.default_actions", [], "at least one action"),
        ("listeners.0.protocol", "HTTPS", "only HTTP"),
        ("target_groups.0.algorithm", "random", "algorithm"),
        ("target_groups.0.health_check.matcher", "200-abc", "matcher"),
        ("target_groups.0.health_check.matcher", "99", "matcher"),
        ("target_groups.0.health_check.path", "health", "path"),
        ("target_groups.0.health_check.port", "http", "port"),
        ("target_groups.0.health_check.interval", 0, "interval"),
        ("target_groups.0.targets", [{"ip": "a", "port": 1}, {"ip": "a", "port": 1}], "twice"),
        ("target_groups.0.targets", [{"ip": "a"}], "port"),
    ],
)
def test_invalid(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(with_change(path, value))


def test_not_json_is_an_error() -> None:
    with pytest.raises(ConfigError):
        parse('{"version": 1, "listen')


def test_matcher() -> None:
    assert parse_matcher("200") == ((200, 200),)
    assert parse_matcher("200,202, 300-399") == ((200, 200), (202, 202), (300, 399))


def test_watcher_applies_newer_valid_versions_only(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    applied: list[int] = []

    def apply(config: Config) -> None:
        if config.speed == 3.0:
            raise ConfigError("cannot compile")
        applied.append(config.version)

    watcher = ConfigWatcher(str(path), apply)
    assert watcher.once() is False  # no file yet
    path.write_text('{"version": 2}')
    assert watcher.once() is True
    assert watcher.once() is False  # unchanged
    path.write_text('{"version": 3, "spee')  # a partial write
    assert watcher.once() is False
    path.write_text('{"version": 1}')  # older
    assert watcher.once() is False
    path.write_text('{"version": 4, "speed": 3.0}')  # refused by apply
    assert watcher.once() is False
    path.write_text('{"version": 5}')
    assert watcher.once() is True
    assert (applied, watcher.version) == ([2, 5], 5)
