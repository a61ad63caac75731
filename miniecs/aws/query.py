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
import uuid
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator

from miniecs.errors import AwsError

from .protocols import (
    WireResponse,
    _snake,
    call_handler,
    check_structure,
    guarded,
    service_model,
)

log = logging.getLogger(__name__)
_MISSING = object()


def _name(shape: Shape, default: str) -> str:
    return str(shape.serialization.get("name", default))


def parse_params(shape: Shape, params: dict[str, str], prefix: str = "") -> Any:
    """The value of `shape` found under `prefix` in the flattened form `params`, or _MISSING."""
    kind = shape.type_name
    if kind == "structure":
        out: dict[str, Any] = {}
        for key, member in shape.members.items():
            name = _name(member, key)
            value = parse_params(member, params, f"{prefix}.{name}" if prefix else name)
            if value is not _MISSING:
                out[key] = value
        return out if out or not prefix or _has_prefix(params, prefix) else _MISSING
    if kind == "list":
        if params.get(prefix) == "":
            return []
        if shape.serialization.get("flattened"):
            base = prefix
            if shape.member.serialization.get("name"):
                base = ".".join([*prefix.split(".")[:-1], _name(shape.member, "")])
        else:
            base = f"{prefix}.{_name(shape.member, 'member')}"
        return _indexed(base, params, lambda p: parse_params(shape.member, params, p))
    if kind == "map":
        base = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
        key_name, value_name = _name(shape.key, "key"), _name(shape.value, "value")
        pairs = _indexed(
            base,
            params,
            lambda p: (
                parse_params(shape.key, params, f"{p}.{key_name}"),
                parse_params(shape.value, params, f"{p}.{value_name}"),
            ),
        )
        if pairs is _MISSING:
            return _MISSING
        return {k: v for k, v in pairs if k is not _MISSING}
    if prefix not in params:
        return _MISSING
    return _scalar(kind, params[prefix])


def _has_prefix(params: dict[str, str], prefix: str) -> bool:
    return any(k.startswith(prefix + ".") for k in params)


def _indexed(base: str, params: dict[str, str], item: Any) -> Any:
    indexes = set()
    for key in params:
        if key.startswith(base + "."):
            head = key[len(base) + 1 :].split(".", 1)[0]
            if head.isdigit():
                indexes.add(int(head))
    if not indexes:
        return _MISSING
    values = [item(f"{base}.{i}") for i in sorted(indexes)]
    return [v for v in values if v is not _MISSING]


def _scalar(kind: str, text: str) -> Any:
    """A form value converted to the shape's type; a value that does not convert is left as text
    so the validator reports it in botocore's words."""
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("double", "float"):
            return float(text)
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
    `handlers.<operation_in_snake_case>(request) -> response dict`. `validation_code` is the
    error code the service uses for a request that does not fit the model."""

    def __init__(
        self,
        name: str,
        handlers: object,
        strict: bool = False,
        validation_code: str = "ValidationError",
    ) -> None:
        self.model: ServiceModel = service_model(name)
        self.api_version = str(self.model.metadata["apiVersion"])
        self.namespace = str(self.model.metadata["xmlNamespace"])
        self.handlers = handlers
        self.strict = strict
        self.validation_code = validation_code
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
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
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
                request = parse_params(op_model.input_shape, params)
                report = ParamValidator().validate(request, op_model.input_shape)
                if report.has_errors():
                    message = report.generate_report().replace("\n", " ").strip()
                    raise AwsError(message, code=self.validation_code)
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


def _internal_failure(exc: Exception) -> AwsError:
    return AwsError(f"Internal error: {exc}", code="InternalFailure", status=500)
