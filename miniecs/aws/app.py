"""The HTTP front of the AWS endpoint: one port, admission, then dispatch by protocol to a service.

Every request first passes the door (`door.py`): a well-formed loopback `Host` on a loopback
endpoint and no browser cross-site markers, on every path. AWS API calls must then carry a SigV4
`Authorization` header, and their bodies are read up to MAX_BODY bytes within BODY_SECONDS. AWS
JSON services are found by the `X-Amz-Target` prefix (Smithy RPC v2 CBOR by the path);
query-protocol services (a form-encoded POST without it) by the request's `Version`; anything
else is answered in its own protocol as not emulated (`routing.py`). The read-only views
(`/_miniecs/*`, `/metrics`) need no signature, as Prometheus scrapers and `miniecs top` send
none. The ASGI app is only the control plane's door (a few requests a second); the ALB's data
plane never goes through it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response

from miniecs.errors import AwsError
from miniecs.metrics.prometheus import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE
from miniecs.metrics.prometheus import exposition
from miniecs.metrics.view import UsageView

from .door import LOOPBACK_NAMES, AuthProblem, authorization, cross_site, host_name
from .protocols import JsonService, RpcV2CborService, WireResponse
from .query import QueryService, parse_form
from .routing import error_response, not_emulated, request_protocol, service_info

__all__ = ["LOOPBACK_NAMES", "MAX_BODY", "create_app"]

MAX_BODY = 2 * 1024 * 1024
"""Largest request body, in bytes: twice CloudWatch's PutMetricData and CloudWatch Logs'
PutLogEvents limits (1 MB of data), so a batch just over those limits, with its JSON framing,
still reaches the service and gets that service's own error; AWS answers far larger bodies
with 413 RequestEntityTooLarge."""
BODY_SECONDS = 10.0
"""Time allowed to send a request body (a client that trickles it is cut off)."""

_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
_CBOR_PATH = re.compile(r"/service/([^/]+)/operation/([^/]+)")


class _TooLarge(AwsError):
    code = "RequestEntityTooLarge"
    status = 413


async def read_body(request: Request) -> bytes:
    """The request's body, at most MAX_BODY bytes, within BODY_SECONDS."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _TooLarge(f"Request size {int(declared)} exceeded {MAX_BODY} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise _TooLarge(f"Request size exceeded {MAX_BODY} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise AwsError(
            f"The request body did not arrive within {BODY_SECONDS:.0f} s.",
            code="RequestTimeout",
        ) from None
    return b"".join(chunks)


def _response(wire: WireResponse) -> Response:
    return Response(content=wire.body, status_code=wire.status, headers=wire.headers)


def _forbidden(message: str) -> Response:
    return Response(
        content=json.dumps({"__type": "AccessDeniedException", "message": message}).encode(),
        status_code=403,
        media_type="application/x-amz-json-1.1",
    )


def create_app(
    services: Sequence[JsonService | QueryService],
    allowed_hosts: frozenset[str] | None,
    usage: Callable[[], UsageView] | None = None,
    scaling: Callable[[str], list[dict[str, Any]] | None] | None = None,
    console: APIRouter | None = None,
) -> FastAPI:
    """`services`: the emulated services, routed by their own metadata (an AWS JSON service by
    its target prefix, a query service by its API version). `allowed_hosts`: Host header names
    accepted (None: any well-formed one). A loopback-bound endpoint accepts only loopback
    names, so a web page cannot reach it through DNS rebinding. `usage`: the live usage view
    behind `GET /_miniecs/usage` (JSON, read by `miniecs top`) and `GET /metrics` (Prometheus
    text format). `scaling`: the autoscaler's recent decisions for a ResourceId (None: no
    scalable target), behind `GET /_miniecs/scaling/<cluster>/<service>` (read by `miniecs
    why`). `console`: the web console's routes (`GET /`, `/console/...`), behind the same Host
    and cross-site checks."""
    by_prefix = {s.target_prefix: s for s in services if isinstance(s, JsonService)}
    by_version = {s.api_version: s for s in services if isinstance(s, QueryService)}
    emulated = sorted({s.model.service_name for s in services})
    signing_names = {
        str(s.model.metadata.get("signingName") or s.model.metadata["endpointPrefix"])
        for s in services
    }
    app = FastAPI(title="miniecs", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def admit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        host = host_name(request.headers.get("host", ""))
        if host is None or (allowed_hosts is not None and host not in allowed_hosts):
            return _forbidden("Host not allowed.")
        reason = cross_site(request.headers.get("origin"), request.headers.get("sec-fetch-site"))
        if reason is not None:
            return _forbidden(f"Cross-site request refused: {reason}")
        return await call_next(request)

    if console is not None:
        app.include_router(console)

    @app.get("/_miniecs/health")
    async def health() -> dict[str, object]:
        return {"status": "ok", "services": emulated}

    @app.get("/_miniecs/usage")
    async def usage_json() -> Response:
        if usage is None:
            return Response(status_code=404)
        return Response(content=json.dumps(usage().to_json()), media_type="application/json")

    @app.get("/_miniecs/scaling/{cluster}/{service}")
    async def scaling_json(cluster: str, service: str) -> Response:
        history = None if scaling is None else scaling(f"service/{cluster}/{service}")
        if history is None:
            return Response(status_code=404)
        return Response(content=json.dumps(history), media_type="application/json")

    @app.get("/metrics")
    async def prometheus() -> Response:
        if usage is None:
            return Response(status_code=404)
        return Response(content=exposition(usage), media_type=PROMETHEUS_CONTENT_TYPE)

    async def route(request: Request, protocol: str, scope: str, body: bytes) -> WireResponse:
        target = request.headers.get("x-amz-target", "")
        if protocol == "smithy-rpc-v2-cbor":
            path = _CBOR_PATH.fullmatch(request.url.path)
            cbor = by_prefix.get(path.group(1)) if path else None
            if path and isinstance(cbor, RpcV2CborService) and request.method == "POST":
                return await cbor.handle_cbor(path.group(2), body)
        elif protocol == "json":
            service = by_prefix.get(target.partition(".")[0])
            if service is not None:
                return await service.handle(target, body)
        elif protocol == "query" and request.method == "POST":
            params = parse_form(body)
            query = by_version.get(params.get("Version", ""))
            if query is not None:
                return await query.handle_params(params)
        if scope in signing_names:
            code = "InvalidAction" if protocol == "query" else "UnknownOperationException"
            return error_response(protocol, code, "Unknown operation or API version.", 400)
        info = await asyncio.to_thread(service_info, scope)
        return not_emulated(scope, protocol, info, emulated)

    @app.api_route("/{path:path}", methods=_METHODS)
    async def aws(request: Request) -> Response:
        """An AWS API call: signed, bounded, routed."""
        protocol = request_protocol(
            request.url.path,
            request.headers.get("x-amz-target", ""),
            request.headers.get("content-type", ""),
        )
        has_date = "x-amz-date" in request.headers or "date" in request.headers
        credential = authorization(request.headers.get("authorization"), has_date)
        if isinstance(credential, AuthProblem):
            if credential.missing:
                code, status = "MissingAuthenticationToken", 403
                if protocol != "query":
                    code += "Exception"
            else:
                code, status = "IncompleteSignature", 400
                if protocol != "query":
                    code += "Exception"
            return _response(error_response(protocol, code, credential.message, status))
        try:
            body = await read_body(request)
            return _response(await route(request, protocol, credential.service, body))
        except AwsError as exc:
            return _response(error_response(protocol, exc.code, exc.message, exc.status))

    return app
