"""The AWS query protocol (ELBv2, later CloudWatch's query flavour), driven by botocore's models.

Requests are form-encoded (`Action=...&Version=...&Listeners.member.1.Port=80`); `parse_params`
folds the flattened keys back into the input shape's dict, which botocore's validator then
checks. Responses are XML built by walking the output shape (`<XResponse><XResult>...`), and
errors are `<ErrorResponse><Error><Type>Sender</Type><Code>...` with the HTTP status the model
gives the error code. `protocols.py` is the JSON counterpart.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import re
import uuid
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from botocore.model import ServiceModel, Shape

from miniecs.errors import AwsError, ValidationError

from .protocols import (
    WireResponse,
    _snake,
    call_handler,
    check_structure,
    guarded,
    service_model,
)
from .validate import VALIDATION_ERRORS, ValidationErrors, validate_request

log = logging.getLogger(__name__)
_MISSING = object()


def _name(shape: Shape, default: str) -> str:
    return str(shape.serialization.get("name", default))


MAX_FORM_FIELDS = 50_000
"""Fields in one form-encoded request: a 1 MiB PutMetricData of 1,000 metrics with their
dimensions has about 35,000; nothing legitimate has more."""


class _Node:
    """The form's keys as a tree (`Listeners.member.1.Port` is Listeners → member → 1 → Port),
    so parsing walks each key once whatever the shape."""

    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.value: str | None = None
        self.children: dict[str, _Node] = {}


def _tree(params: dict[str, str]) -> _Node:
    root = _Node()
    for key, value in params.items():
        node = root
        for part in key.split("."):
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _Node()
            node = child
        node.value = value
    return root


def parse_params(shape: Shape, params: dict[str, str]) -> Any:
    """The input of `shape` folded back from the flattened form `params`."""
    return _parse(shape, _tree(params), None, root=True)


def _parse(shape: Shape, node: _Node | None, parent: _Node | None, root: bool = False) -> Any:
    """The value of `shape` at `node` (a child of `parent`), or _MISSING."""
    kind = shape.type_name
    if kind == "list":
        return _parse_list(shape, node, parent)
    if node is None:
        return _MISSING
    if kind == "structure":
        out: dict[str, Any] = {}
        for key, member in shape.members.items():
            member_name = _name(member, key)
            value = _parse(member, node.children.get(member_name), node)
            if value is not _MISSING:
                out[key] = value
        return out if out or root or node.children else _MISSING
    if kind == "map":
        base = node if shape.serialization.get("flattened") else node.children.get("entry")
        if base is None:
            return _MISSING
        key_name, value_name = _name(shape.key, "key"), _name(shape.value, "value")
        out_map: dict[Any, Any] = {}
        for entry in _items(base):
            k = _parse(shape.key, entry.children.get(key_name), entry)
            v = _parse(shape.value, entry.children.get(value_name), entry)
            if k is not _MISSING and v is not _MISSING:
                out_map[k] = v
        return out_map
    if node.value is None:
        return _MISSING
    return _scalar(kind, node.value)


def _parse_list(shape: Shape, node: _Node | None, parent: _Node | None) -> Any:
    if node is not None and node.value == "" and not node.children:
        return []
    if shape.serialization.get("flattened"):
        member_name = shape.member.serialization.get("name")
        base = parent.children.get(member_name) if member_name and parent else node
    else:
        base = node.children.get(_name(shape.member, "member")) if node is not None else None
    if base is None:
        return _MISSING
    values = [_parse(shape.member, item, base) for item in _items(base)]
    return [v for v in values if v is not _MISSING]


def _items(base: _Node) -> list[_Node]:
    """The numbered children of `base` (`.1`, `.2`, ...) in order."""
    indexes = {int(k): child for k, child in base.children.items() if k.isascii() and k.isdigit()}
    return [indexes[i] for i in sorted(indexes)]


_INTEGER = re.compile(r"[+-]?[0-9]{1,40}")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|NaN|[+-]?Infinity")


def _scalar(kind: str, text: str) -> Any:
    """A form value converted to the shape's type; a value that does not convert is left as text
    so the validator reports it."""
    try:
        if kind in ("integer", "long"):
            return int(text) if _INTEGER.fullmatch(text) else text
        if kind in ("double", "float"):
            return float(text) if _NUMBER.fullmatch(text) else text
        if kind == "boolean":
            return {"true": True, "false": False}.get(text.lower(), text)
        if kind == "timestamp":
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if kind == "blob":
            return base64.b64decode(text)
    except ValueError:
        return text
    return text


def _timestamp(value: Any) -> str:
    if isinstance(value, dt.datetime):
        value = value.timestamp()
    moment = dt.datetime.fromtimestamp(float(value), dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def to_xml(shape: Shape, value: Any, strict: bool, path: str = "") -> str:
    """The inner XML of `value` as `shape` (without the element of `shape` itself)."""
    kind = shape.type_name
    if kind == "structure":
        check_structure(shape, value, strict, path)
        parts = []
        for key, member in shape.members.items():
            if value.get(key) is None:
                continue
            name = _name(member, key)
            parts.append(f"<{name}>{to_xml(member, value[key], strict, f'{path}.{key}')}</{name}>")
        return "".join(parts)
    if kind == "list":
        name = _name(shape.member, "member")
        return "".join(
            f"<{name}>{to_xml(shape.member, v, strict, f'{path}[]')}</{name}>" for v in value
        )
    if kind == "map":
        key_name, value_name = _name(shape.key, "key"), _name(shape.value, "value")
        return "".join(
            f"<entry><{key_name}>{escape(str(k))}</{key_name}>"
            f"<{value_name}>{to_xml(shape.value, v, strict, path)}</{value_name}></entry>"
            for k, v in value.items()
        )
    if kind == "timestamp":
        return _timestamp(value)
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("integer", "long"):
        return str(int(value))
    if kind in ("double", "float"):
        return repr(float(value))
    if kind == "blob":
        return base64.b64encode(value).decode() if isinstance(value, bytes) else escape(value)
    return escape(value if isinstance(value, str) else str(value))


class QueryService:
    """An AWS query-protocol service: `Action=<Operation>` dispatched to
    `handlers.<operation_in_snake_case>(request) -> response dict`. A request that does not fit
    the model gets the service's validation error (`validate.VALIDATION_ERRORS`)."""

    def __init__(self, name: str, handlers: object, strict: bool = False) -> None:
        self.model: ServiceModel = service_model(name)
        self.api_version = str(self.model.metadata["apiVersion"])
        self.namespace = str(self.model.metadata["xmlNamespace"])
        self.handlers = handlers
        self.strict = strict
        errors = VALIDATION_ERRORS.get(self.model.service_name, ValidationErrors(ValidationError))
        self._type_error = errors.error
        """Form values are text: one that does not convert to its member's type is a
        validation error (the service's code), with AWS JSON's deserialiser wording."""
        self._status = {
            str(s.error_code): int(s.metadata.get("error", {}).get("httpStatusCode", 400))
            for s in self.model.error_shapes
            if "error" in s.metadata
        }

    def _respond(self, status: int, body: str, request_id: str) -> WireResponse:
        return WireResponse(
            status,
            body.encode(),
            {"Content-Type": "text/xml", "x-amzn-RequestId": request_id},
        )

    def error(self, exc: AwsError) -> WireResponse:
        request_id = str(uuid.uuid4())
        status = exc.status if exc.status >= 500 else self._status.get(exc.code, exc.status)
        kind = "Receiver" if status >= 500 else "Sender"
        body = (
            f'<ErrorResponse xmlns="{self.namespace}"><Error><Type>{kind}</Type>'
            f"<Code>{escape(exc.code)}</Code><Message>{escape(exc.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return self._respond(status, body, request_id)

    async def handle(self, body: bytes) -> WireResponse:
        try:
            params = parse_form(body)
        except AwsError as exc:
            return self.error(exc)
        return await self.handle_params(params)

    async def handle_params(self, params: dict[str, str]) -> WireResponse:
        """Answer a request already decoded by `parse_form`."""
        operation = params.get("Action", "")

        async def respond() -> WireResponse:
            if operation not in self.model.operation_names:
                raise AwsError(f"Could not find operation {operation}", code="InvalidAction")
            if not hasattr(self.handlers, _snake(operation)):
                raise AwsError(
                    f"Operation {operation} is not supported by miniecs.", code="InvalidAction"
                )
            op_model = self.model.operation_model(operation)
            request: dict[str, Any] = {}
            if op_model.input_shape is not None:
                request = validate_request(
                    self.model.service_name,
                    op_model.input_shape,
                    parse_params(op_model.input_shape, params),
                    self._type_error,
                )
            result = await call_handler(self.handlers, operation, request)
            inner = ""
            if op_model.output_shape is not None:
                inner = to_xml(op_model.output_shape, result, self.strict)
            request_id = str(uuid.uuid4())
            wrapper = (
                op_model.output_shape.serialization.get("resultWrapper")
                if (op_model.output_shape is not None)
                else None
            )
            result_xml = f"<{wrapper}>{inner}</{wrapper}>" if wrapper else inner
            xml = (
                f'<{operation}Response xmlns="{self.namespace}">{result_xml}'
                f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
                f"</{operation}Response>"
            )
            return self._respond(200, xml, request_id)

        return await guarded(operation, respond, self.error, _internal_failure)


def parse_form(body: bytes) -> dict[str, str]:
    """A form-encoded body as a dict (the last of repeated keys wins); more than
    MAX_FORM_FIELDS fields is a MalformedQueryString, as AWS calls a form it cannot read."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except ValueError:
        raise AwsError(
            f"The request has more than {MAX_FORM_FIELDS} parameters.", code="MalformedQueryString"
        ) from None
    return dict(pairs)


def _internal_failure(exc: Exception) -> AwsError:
    return AwsError(f"Internal error: {exc}", code="InternalFailure", status=500)
