"""Requests checked against botocore's input shapes as AWS checks them, before any handler runs.

Two phases, as AWS's front end has them. Deserialisation: a value of the wrong JSON type for its
member is a `SerializationException` worded as AWS's JSON services word it ("STRING_VALUE cannot
be converted to Integer", recorded from AWS by dynalite's test suite), and so is an `integer`
outside Smithy's 32-bit range. Validation: every constraint the model has (required members,
`min`/`max` for numbers, lengths of strings, lists and maps, enums, patterns), plus the bounds AWS
documents but the models lack (`EXTRA_BOUNDS`), reported all at once in AWS's format: "2
validation errors detected: Value '70000' at 'port' failed to satisfy constraint: Member must
have value less than or equal to 65535; ...". Which error code carries the report is the
service's own (`VALIDATION_ERRORS`). Members the model does not know are dropped, as AWS ignores
them, so handlers only ever see modelled members of the modelled types.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import regex
from botocore.model import Shape

from miniecs.errors import (
    AwsError,
    InvalidParameterException,
    MissingParameter,
    SerializationException,
    ValidationError,
    ValidationException,
)
from miniecs.quotas import TASKS_PER_SERVICE

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
TIMESTAMPS = (-62135596800, 253402300799)
"""Epoch seconds a timestamp may carry: years 1 to 9999, what a date type can hold."""
MAX_DEPTH = 32
"""Nesting of a request body (objects and arrays). The deepest input shape miniecs serves is 11
levels deep (PutScalingPolicy; tests/unit/test_validate.py checks that every one fits)."""
MAX_LISTED = 100
"""Errors listed in one report (the count covers them all), so a huge bad request cannot make a
huge answer."""
_VALUE_CHARS = 200
PATTERN_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Bound:
    low: int | None
    high: int | None
    source: str


EXTRA_BOUNDS: dict[tuple[str, str, str], Bound] = {
    ("ecs", "CreateServiceRequest", "desiredCount"): Bound(
        0, TASKS_PER_SERVICE, "ECS service quota: tasks per service 5,000"
    ),
    ("ecs", "UpdateServiceRequest", "desiredCount"): Bound(
        0, TASKS_PER_SERVICE, "ECS service quota: tasks per service 5,000"
    ),
    ("ecs", "RunTaskRequest", "count"): Bound(
        1, 10, "ECS service quota: tasks launched per run-task 10 (RunTask API reference)"
    ),
    ("ecs", "PortMapping", "containerPort"): Bound(1, 65535, "TCP/UDP port range"),
    ("ecs", "PortMapping", "hostPort"): Bound(0, 65535, "TCP/UDP port range"),
    ("ecs", "LoadBalancer", "containerPort"): Bound(1, 65535, "TCP/UDP port range"),
}
"""Bounds AWS documents that botocore's models lack, by (service, structure, member)."""


@dataclass(frozen=True, slots=True)
class ValidationErrors:
    """How a service reports a request that breaks its model's constraints: the error class,
    and (CloudWatch) the error for a missing required member."""

    error: Callable[[str], AwsError]
    missing: Callable[[str], AwsError] | None = None


def _cloudwatch_missing(member: str) -> AwsError:
    return MissingParameter(f"The parameter {member} is required.")


VALIDATION_ERRORS: dict[str, ValidationErrors] = {
    "ecs": ValidationErrors(InvalidParameterException),
    "application-autoscaling": ValidationErrors(ValidationException),
    "elbv2": ValidationErrors(ValidationError),
    "cloudwatch": ValidationErrors(ValidationError, missing=_cloudwatch_missing),
    "logs": ValidationErrors(InvalidParameterException),
    "secretsmanager": ValidationErrors(InvalidParameterException),
    "ssm": ValidationErrors(ValidationException),
}
"""Each service's validation error: ECS `InvalidParameterException`, Application Auto Scaling
`ValidationException`, ELBv2 and CloudWatch `ValidationError` (CloudWatch answers an absent
required parameter with `MissingParameter` "The parameter X is required.")."""


class _TypeError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_JAVA = {"integer": "Integer", "long": "Long", "float": "Float", "double": "Double"}


def _token(value: Any) -> str:
    """The JSON token name AWS's deserialiser reports for `value`."""
    if value is True:
        return "TRUE_VALUE"
    if value is False:
        return "FALSE_VALUE"
    if isinstance(value, int):
        return "NUMBER_VALUE"
    if isinstance(value, float):
        return "DECIMAL_VALUE"
    if isinstance(value, str):
        return "STRING_VALUE"
    return "VALUE"


def _wrong(kind: str, value: Any) -> _TypeError:
    if isinstance(value, dict):
        return _TypeError("Start of structure or map found where not expected")
    if isinstance(value, list):
        if kind in ("structure", "map"):
            return _TypeError("Start of list found where not expected")
        if kind == "blob":
            return _TypeError("Unrecognized collection type class java.nio.ByteBuffer")
        java = {"string": "String", "boolean": "Boolean", "timestamp": "Date", **_JAVA}
        return _TypeError(f"Unrecognized collection type class java.lang.{java.get(kind, kind)}")
    if kind in ("structure", "map", "list"):
        return _TypeError("Unexpected field type")
    if kind == "boolean" and isinstance(value, str):
        return _TypeError("Unexpected token received from parser")
    if kind == "blob":
        return _TypeError("only base-64-encoded strings are convertible to bytes")
    target = {"string": "String", "boolean": "Boolean", "timestamp": "Date"}.get(
        kind, _JAVA.get(kind, kind)
    )
    return _TypeError(f"{_token(value)} cannot be converted to {target}")


def conform(shape: Shape, value: Any, depth: int = 0) -> Any:
    """`value` as `shape` with unknown members and nulls dropped; raises _TypeError at the first
    value of the wrong type (AWS's deserialiser stops at the first one too)."""
    kind = shape.type_name
    if depth > MAX_DEPTH:
        raise _TypeError("Request nested too deeply")
    if kind == "structure":
        if not isinstance(value, dict):
            raise _wrong(kind, value)
        return {
            k: conform(shape.members[k], v, depth + 1)
            for k, v in value.items()
            if isinstance(k, str) and k in shape.members and v is not None
        }
    if kind == "list":
        if not isinstance(value, list):
            raise _wrong(kind, value)
        return [conform(shape.member, v, depth + 1) for v in value if v is not None]
    if kind == "map":
        if not isinstance(value, dict):
            raise _wrong(kind, value)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _TypeError("Unexpected field type")
            if v is not None:
                out[k] = conform(shape.value, v, depth + 1)
        return out
    return _scalar(kind, value)


def _scalar(kind: str, value: Any) -> Any:
    if kind == "string":
        if not isinstance(value, str):
            raise _wrong(kind, value)
        return value
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(kind, value)
        low, high = INT32 if kind == "integer" else INT64
        if not low <= value <= high:
            raise _TypeError(f"NUMBER_VALUE cannot be converted to {_JAVA[kind]}")
        return value
    if kind in ("double", "float"):
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong(kind, value)
        if isinstance(value, int) and not -(2**1023) < value < 2**1023:
            raise _TypeError(f"NUMBER_VALUE cannot be converted to {_JAVA[kind]}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _wrong(kind, value)
        return value
    if kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, int | float | str | dt.datetime):
            raise _wrong(kind, value)
        if isinstance(value, int | float) and not (
            TIMESTAMPS[0] <= value <= TIMESTAMPS[1]  # NaN compares False
        ):
            raise _TypeError(f"{_token(value)} cannot be converted to Date")
        return value
    if kind == "blob":
        if isinstance(value, bytes):
            return value
        if not isinstance(value, str):
            raise _wrong(kind, value)
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _TypeError("only base-64-encoded strings are convertible to bytes") from None
    return value


@cache
def _pattern(text: str) -> regex.Pattern[str] | None:
    """A model pattern (Java syntax) compiled for Python's `regex`: Java spells characters
    beyond the BMP as a surrogate-pair range, `regex` as code points."""
    text = text.replace("\\uD800\\uDC00-\\uDBFF\\uDFFF", "\\U00010000-\\U0010FFFF")
    try:
        return regex.compile(text)
    except regex.error:
        return None


def _matches(pattern: str, value: str) -> bool:
    """`value` fully matches the model's `pattern` (a pattern `regex` cannot compile is not
    checked); a match that takes over PATTERN_SECONDS counts as a mismatch, so no value can make
    validation slow."""
    compiled = _pattern(pattern)
    if compiled is None:
        return True
    try:
        return compiled.fullmatch(value, timeout=PATTERN_SECONDS) is not None
    except TimeoutError:
        return False


def _show(value: Any) -> str:
    """`value` as AWS's (Java) reports print it, cut short."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(v) for v in value[:20]) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}={_show(v)}" for k, v in list(value.items())[:20]) + "}"
    else:
        text = str(value)
    return text if len(text) <= _VALUE_CHARS else text[:_VALUE_CHARS] + "..."


def _member_path(parent: str, name: str) -> str:
    name = name[:1].lower() + name[1:]
    return f"{parent}.{name}" if parent else name


def _utf16_length(text: str) -> int:
    """Java's String.length(): UTF-16 code units, which AWS's length constraints count."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


@dataclass
class Report:
    problems: list[str]
    missing: list[str]
    count: int = 0

    def add(self, value: Any, path: str, constraint: str) -> None:
        self.count += 1
        if len(self.problems) < MAX_LISTED:
            shown = "null" if value is None else f"'{_show(value)}'"
            self.problems.append(
                f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"
            )

    def text(self) -> str:
        noun = "error" if self.count == 1 else "errors"
        return f"{self.count} validation {noun} detected: " + "; ".join(self.problems)


def _bounds(service: str, owner: str, member: str, shape: Shape) -> tuple[Any, Any]:
    """The model's min/max for a member, or the documented ones where the model has none."""
    extra = EXTRA_BOUNDS.get((service, owner, member))
    if extra is not None:
        return extra.low, extra.high
    return shape.metadata.get("min"), shape.metadata.get("max")


def check(
    service: str, shape: Shape, value: Any, report: Report, path: str = "", bounds: Any = None
) -> None:
    """Add to `report` every constraint `value` (already conformed) breaks."""
    kind = shape.type_name
    if bounds is None:
        bounds = (shape.metadata.get("min"), shape.metadata.get("max"))
    low, high = bounds
    if kind == "structure":
        for name, member in shape.members.items():
            member_path = _member_path(path, name)
            if name not in value:
                if name in shape.required_members:
                    report.missing.append(name)
                    report.add(None, member_path, "Member must not be null")
                continue
            check(
                service,
                member,
                value[name],
                report,
                member_path,
                _bounds(service, shape.name, name, member),
            )
        return
    if kind in ("list", "map"):
        if low is not None and len(value) < low:
            report.add(value, path, f"Member must have length greater than or equal to {low}")
        if high is not None and len(value) > high:
            report.add(value, path, f"Member must have length less than or equal to {high}")
        if kind == "list":
            for i, item in enumerate(value, 1):
                check(service, shape.member, item, report, f"{path}.{i}.member")
        else:
            for k, item in value.items():
                check(service, shape.key, k, report, f"{path}.{k}.key")
                check(service, shape.value, item, report, f"{path}.{k}.value")
        return
    if kind == "string":
        length = _utf16_length(value)
        if low is not None and length < low:
            report.add(value, path, f"Member must have length greater than or equal to {low}")
        if high is not None and length > high:
            report.add(value, path, f"Member must have length less than or equal to {high}")
        if shape.enum and value not in shape.enum:
            allowed = ", ".join(shape.enum)
            report.add(value, path, f"Member must satisfy enum value set: [{allowed}]")
        pattern = shape.metadata.get("pattern")
        if pattern and (high is None or length <= high) and not _matches(pattern, value):
            report.add(value, path, f"Member must satisfy regular expression pattern: {pattern}")
        return
    if kind in ("integer", "long", "double", "float") and isinstance(value, int | float):
        if low is not None and value < low:
            report.add(value, path, f"Member must have value greater than or equal to {low}")
        if high is not None and value > high:
            report.add(value, path, f"Member must have value less than or equal to {high}")


def validate_request(
    service: str, shape: Shape | None, request: Any, type_errors: Callable[[str], AwsError]
) -> dict[str, Any]:
    """`request` (JSON form) checked against the operation's input `shape`: the request as
    handlers see it, or the service's error. `type_errors` makes the error for a value of the
    wrong type (JSON services: SerializationException)."""
    if shape is None:
        return {}
    try:
        conformed: dict[str, Any] = conform(shape, request)
    except _TypeError as exc:
        raise type_errors(exc.message) from None
    report = Report([], [])
    check(service, shape, conformed, report)
    if report.count:
        errors = VALIDATION_ERRORS.get(service, ValidationErrors(ValidationError))
        if errors.missing is not None and report.missing:
            raise errors.missing(report.missing[0])
        raise errors.error(report.text())
    return conformed


def serialization_error(message: str) -> AwsError:
    return SerializationException(message)


def depth(value: Any) -> int:
    """How deeply `value` (decoded JSON or CBOR) nests, measured without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest
