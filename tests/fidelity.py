"""Field-by-field comparison of miniecs's responses with AWS-recorded ones.

The recorded responses are the `Output::` blocks of the aws CLI's bundled examples
(`awscli/examples/<service>/<command>.rst`, recorded from AWS by the CLI's maintainers). A
comparison walks the recorded response: every key it has must be in miniecs's answer with the
same JSON type, and keys in FIXED must have the same value. Values that identify or time a
resource (ids, ARNs, timestamps, addresses, counts that move with time) are not compared, and
keys that only exist for features miniecs does not emulate (EC2 container instances) are
skipped. Each key looked at is one comparison; each mismatch one difference.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awscli

EXAMPLES = Path(awscli.__file__).parent / "examples"

FIXED = frozenset(
    {
        "status", "lastStatus", "desiredStatus", "launchType", "platformFamily",
        "schedulingStrategy", "propagateTags", "enableECSManagedTags", "networkMode",
        "compatibilities", "requiresCompatibilities", "assignPublicIp", "protocol",
        "connectivity", "essential", "Scheme", "Type", "IpAddressType", "TargetType",
        "Protocol", "StateValue", "ComparisonOperator", "Statistic", "ActionsEnabled",
        "ServiceNamespace", "ScalableDimension", "PolicyType", "PredefinedMetricType",
        "containerInsights", "family", "revision", "cpu", "memory", "name", "type",
        "HealthCheckProtocol", "HealthCheckPort", "Matcher", "HttpCode", "ProtocolVersion",
        "Code", "maximumPercent", "minimumHealthyPercent", "deploymentController",
        "MinCapacity", "MaxCapacity", "TargetValue", "Namespace", "MetricName", "Period",
        "EvaluationPeriods", "Threshold", "principalArn", "value", "key", "sizeInGiB",
    }
)  # fmt: skip
"""Keys whose values are fixed by the request or by AWS's rules, compared as values."""
SKIPPED = frozenset(
    {
        # EC2 launch type: container instances do not exist on Fargate.
        "containerInstanceArn", "ec2InstanceId", "registeredContainerInstancesCount",
        # Attachments of capacity providers backed by Auto Scaling groups (EC2 only).
        "attachments", "attachmentsStatus",
    }
)  # fmt: skip


@dataclass
class Comparison:
    source: str
    comparisons: int = 0
    differences: list[str] = field(default_factory=list)


def recorded(service: str, command: str, index: int = 0) -> Any:
    """The `index`-th recorded output of an aws CLI example."""
    text = (EXAMPLES / service / f"{command}.rst").read_text()
    outputs = []
    for match in re.finditer(r"Output::\s*\n", text):
        rest = text[match.end() :]
        try:
            value, _ = json.JSONDecoder().raw_decode(rest[rest.index("{") :])
        except (ValueError, json.JSONDecodeError):
            continue
        outputs.append(value)
    return outputs[index]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dt.datetime):
        return "timestamp"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _same_kind(aws: Any, ours: Any, key: str) -> bool:
    a, o = _kind(aws), _kind(ours)
    if o == "timestamp":
        # The CLI prints timestamps as ISO strings or epoch numbers; boto3 parses ours.
        return a in ("string", "number", "timestamp")
    return a == o


def _match(aws_item: Any, ours: list[Any]) -> Any:
    """The element of `ours` that corresponds to a recorded list element: same `name`/`key`
    /`Key`/`Field` when it has one, else the first."""
    if isinstance(aws_item, dict):
        for ident in ("name", "key", "Key", "Field"):
            if ident in aws_item:
                for item in ours:
                    if isinstance(item, dict) and item.get(ident) == aws_item[ident]:
                        return item
    return ours[0]


def compare(aws: Any, ours: Any, c: Comparison, path: str = "") -> None:
    if isinstance(aws, dict):
        if not isinstance(ours, dict):
            c.comparisons += 1
            c.differences.append(f"{path}: object expected, got {_kind(ours)}")
            return
        for key, value in aws.items():
            if key in SKIPPED:
                continue
            here = f"{path}.{key}" if path else key
            c.comparisons += 1
            if key not in ours or ours[key] is None:
                c.differences.append(f"{here}: missing")
                continue
            if not _same_kind(value, ours[key], key):
                c.differences.append(f"{here}: {_kind(value)} expected, got {_kind(ours[key])}")
                continue
            if key in FIXED and not isinstance(value, dict | list) and value != ours[key]:
                c.differences.append(f"{here}: {value!r} expected, got {ours[key]!r}")
                continue
            scalars = isinstance(value, list) and all(not isinstance(v, dict) for v in value)
            if key in FIXED and scalars and value != ours[key]:
                c.differences.append(f"{here}: {value!r} expected, got {ours[key]!r}")
                continue
            compare(value, ours[key], c, here)
    elif isinstance(aws, list) and aws:
        if not ours:
            c.differences.append(f"{path}: empty, AWS has {len(aws)} item(s)")
            return
        compare(aws[0], _match(aws[0], ours), c, f"{path}[]")
