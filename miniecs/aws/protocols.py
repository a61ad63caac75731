"""AWS wire protocols, driven by botocore's own service models.

Requests are checked against the operation's input shape as AWS checks them (`validate.py`:
types, then every constraint, in AWS's words; bodies nested deeper than any input shape refused
before that) and responses are encoded by walking the output shape, so every response has the
members, types and timestamp format that boto3 and the aws CLI expect. Errors are encoded as
AWS encodes them for the protocol (`__type` and `message` for AWS JSON and Smithy RPC v2 CBOR,
plus `x-amzn-query-error` for services that moved from the query protocol). `JsonService` speaks
AWS JSON 1.0/1.1; `RpcV2CborService` adds Smithy RPC v2 CBOR (CloudWatch).
"""

from __future__ import annotations

import base64
import datetime as dt
import inspect
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import botocore.session
import cbor2
from botocore.model import ServiceModel, Shape

from miniecs.errors import (
    AwsError,
    InvalidParameterException,
    SerializationException,
    ServerException,
    UnknownOperationException,
)

from .validate import MAX_DEPTH, depth, validate_request

log = logging.getLogger(__name__)
T = TypeVar("T")
Handler = Callable[[dict[str, Any]], dict[str, Any] | Awaitable[dict[str, Any]]]


@cache
def service_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


@dataclass(frozen=True, slots=True)
class WireResponse:
    status: int
    body: bytes
    headers: dict[str, str]


class ShapeError(ValueError):
    """A response does not fit botocore's model (only raised in strict mode)."""


def check_structure(shape: Shape, value: Any, strict: bool, path: str) -> None:
    """A response value for a structure shape must be an object; in strict mode it may hold
    only the shape's members (every protocol's encoder checks this the same way)."""
    if not isinstance(value, dict):
        raise ShapeError(f"{path or shape.name}: expected an object")
    unknown = set(value) - set(shape.members)
    if unknown and strict:
        raise ShapeError(f"{path or shape.name}: unknown members {sorted(unknown)}")


async def call_handler(handlers: object, operation: str, request: dict[str, Any]) -> Any:
    """Run `handlers.<operation in snake case>(request)`, awaiting it when it is async."""
    result = getattr(handlers, _snake(operation))(request)
    if inspect.isawaitable(result):
        result = await result
    return result


async def guarded(
    operation: str,
    respond: Callable[[], Awaitable[WireResponse]],
    error: Callable[[AwsError], WireResponse],
    internal: Callable[[Exception], AwsError],
) -> WireResponse:
    """`respond()`, with a client's fault answered by `error` and any other failure logged
    and answered as `internal(exc)`. A response that does not fit the model (strict mode
    only) is a bug in miniecs and propagates."""
    try:
        return await respond()
    except AwsError as exc:
        return error(exc)
    except ShapeError:
        log.exception("response does not fit the model")
        raise
    except Exception as exc:
        log.exception("%s failed", operation)
        return error(internal(exc))


def _server_error(exc: Exception) -> AwsError:
    return ServerException(f"Internal error: {exc}")


def encode(shape: Shape, value: Any, strict: bool, path: str = "") -> Any:
    """`value` in the JSON form of `shape`; unknown members are dropped (or raise if strict)."""
    kind = shape.type_name
    if kind == "structure":
        check_structure(shape, value, strict, path)
        return {
            k: encode(shape.members[k], v, strict, f"{path}.{k}")
            for k, v in value.items()
            if k in shape.members and v is not None
        }
    if kind == "list":
        return [encode(shape.member, v, strict, f"{path}[]") for v in value]
    if kind == "map":
        return {str(k): encode(shape.value, v, strict, f"{path}{{}}") for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, dt.datetime):
            return value.timestamp()
        return round(float(value), 3)
    if kind == "string":
        return value if isinstance(value, str) else str(value)
    if kind in ("integer", "long"):
        return int(value)
    if kind in ("double", "float"):
        return float(value)
    if kind == "boolean":
        return bool(value)
    if kind == "blob":
        return base64.b64encode(value).decode() if isinstance(value, bytes) else value
    return value


def paginate(
    items: Sequence[T], next_token: str | None, max_results: int | None, default: int = 100
) -> tuple[list[T], str | None]:
    """One page of `items` and the token for the next; tokens are opaque offsets."""
    start = 0
    if next_token:
        try:
            start = int(json.loads(base64.urlsafe_b64decode(next_token.encode()))["o"])
        except (ValueError, KeyError, TypeError):
            raise InvalidParameterException("Invalid nextToken.") from None
    size = max_results or default
    if not 1 <= size <= 100:
        raise InvalidParameterException("maxResults must be between 1 and 100.")
    page = list(items[start : start + size])
    token = None
    if start + size < len(items):
        token = base64.urlsafe_b64encode(json.dumps({"o": start + size}).encode()).decode()
    return page, token


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class JsonService:
    """An AWS JSON 1.0/1.1 service: `X-Amz-Target: <prefix>.<Operation>` dispatched to
    `handlers.<operation_in_snake_case>(request) -> response dict`."""

    def __init__(self, name: str, handlers: object, strict: bool = False) -> None:
        self.model = service_model(name)
        self.target_prefix = str(self.model.metadata["targetPrefix"])
        self.content_type = f"application/x-amz-json-{self.model.metadata['jsonVersion']}"
        self.handlers = handlers
        self.strict = strict

    def _respond(self, status: int, payload: dict[str, Any]) -> WireResponse:
        return WireResponse(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": self.content_type, "x-amzn-RequestId": str(uuid.uuid4())},
        )

    def error(self, exc: AwsError) -> WireResponse:
        error_type, headers = self.error_type(exc)
        wire = self._respond(exc.status, {"__type": error_type, "message": exc.message})
        wire.headers.update(headers)
        return wire

    def error_type(self, exc: AwsError) -> tuple[str, dict[str, str]]:
        """The `__type` of `exc` on the wire, and extra headers. A service that moved from the
        query protocol (`awsQueryCompatible`, e.g. CloudWatch) sends the modelled error's shape
        name and the query error code in `x-amzn-query-error`, from which botocore restores
        the code its exception classes match (`InvalidParameterValue`)."""
        if not self.model.is_query_compatible:
            return exc.code, {}
        shapes = {str(s.error_code): s.name for s in self.model.error_shapes}
        fault = "Receiver" if exc.status >= 500 else "Sender"
        return shapes.get(exc.code, exc.code), {"x-amzn-query-error": f"{exc.code};{fault}"}

    async def invoke(self, operation: str, request: Any) -> dict[str, Any]:
        """Check `request` against the operation's input shape, run the handler, and return
        its result in the JSON form of the output shape (AwsError for the client's faults)."""
        if operation not in self.model.operation_names:
            raise UnknownOperationException(f"Operation {operation} is not known.")
        handler = getattr(self.handlers, _snake(operation), None)
        if handler is None:
            raise UnknownOperationException(f"Operation {operation} is not supported by miniecs.")
        if not isinstance(request, dict):
            raise SerializationException("Request body must be an object.")
        if depth(request) > MAX_DEPTH:
            raise SerializationException(
                f"Request body nests deeper than {MAX_DEPTH} levels, more than any input shape."
            )
        op_model = self.model.operation_model(operation)
        request = validate_request(
            self.model.service_name, op_model.input_shape, request, SerializationException
        )
        result = await call_handler(self.handlers, operation, request)
        output = op_model.output_shape
        return encode(output, result, self.strict) if output is not None else {}

    async def handle(self, target: str, body: bytes) -> WireResponse:
        operation = target.partition(".")[2]

        async def respond() -> WireResponse:
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                raise SerializationException("Malformed JSON in request body.") from None
            except RecursionError:
                raise SerializationException(
                    f"Request body nests deeper than {MAX_DEPTH} levels, more than any input shape."
                ) from None
            return self._respond(200, await self.invoke(operation, request))

        return await guarded(operation, respond, self.error, _server_error)


def _cbor_form(shape: Shape, value: Any) -> Any:
    """A JSON-form value of `shape` (as `encode` returns it) in CBOR form: timestamps become
    tag 1 (epoch seconds) and blobs raw bytes, as Smithy RPC v2 CBOR sends them."""
    kind = shape.type_name
    if kind == "structure":
        return {k: _cbor_form(shape.members[k], v) for k, v in value.items()}
    if kind == "list":
        return [_cbor_form(shape.member, v) for v in value]
    if kind == "map":
        return {k: _cbor_form(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return cbor2.CBORTag(1, value)
    if kind == "blob" and isinstance(value, str):
        return base64.b64decode(value)
    return value


def _plain(value: Any) -> Any:
    """A decoded CBOR request with tag-1 timestamps as epoch seconds, as JSON requests carry
    them, so handlers see one form whatever the protocol."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return value


class RpcV2CborService(JsonService):
    """A service that speaks Smithy RPC v2 CBOR (what current boto3 picks for CloudWatch:
    `POST /service/<targetPrefix>/operation/<Operation>`, header `smithy-protocol:
    rpc-v2-cbor`, CBOR bodies) and AWS JSON 1.0 (`X-Amz-Target`, inherited)."""

    CBOR_HEADERS = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}

    def _cbor(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> WireResponse:
        return WireResponse(
            status,
            cbor2.dumps(payload),
            {**self.CBOR_HEADERS, "x-amzn-RequestId": str(uuid.uuid4()), **(headers or {})},
        )

    def cbor_error(self, exc: AwsError) -> WireResponse:
        error_type, headers = self.error_type(exc)
        return self._cbor(exc.status, {"__type": error_type, "message": exc.message}, headers)

    async def handle_cbor(self, operation: str, body: bytes) -> WireResponse:
        async def respond() -> WireResponse:
            try:
                request = _plain(cbor2.loads(body)) if body else {}
            except Exception:  # cbor2 raises several kinds on malformed input
                raise SerializationException("Malformed CBOR in request body.") from None
            payload = await self.invoke(operation, request)
            output = self.model.operation_model(operation).output_shape
            return self._cbor(200, _cbor_form(output, payload) if output is not None else {})

        return await guarded(operation, respond, self.cbor_error, _server_error)
