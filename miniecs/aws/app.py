"""The HTTP front of the AWS endpoint: one port, dispatched by protocol to a service.

AWS JSON services are found by the `X-Amz-Target` prefix; query-protocol services (a
form-encoded POST without it) by the request's `Version`. The ASGI app is only the control
plane's door (a few requests a second); the ALB's data plane never goes through it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

import cbor2
from fastapi import APIRouter, FastAPI, Request, Response

from miniecs.metrics.prometheus import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE
from miniecs.metrics.prometheus import exposition
from miniecs.metrics.view import UsageView

from .protocols import JsonService, RpcV2CborService
from .query import QueryService

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _host_name(header: str) -> str:
    if header.startswith("["):
        return header.partition("]")[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def create_app(
    services: Sequence[JsonService | QueryService],
    allowed_hosts: frozenset[str] | None,
    usage: Callable[[], UsageView] | None = None,
    scaling: Callable[[str], list[dict[str, Any]] | None] | None = None,
    console: APIRouter | None = None,
) -> FastAPI:
    """`allowed_hosts`: Host header names accepted (None: any). A loopback-bound endpoint
    accepts only loopback names, so a web page cannot reach it through DNS rebinding.
    `usage`: the live usage view behind `GET /_miniecs/usage` (JSON, read by `miniecs top`)
    and `GET /metrics` (Prometheus text format). `scaling`: the autoscaler's recent decisions
    for a ResourceId (None: no scalable target), behind `GET /_miniecs/scaling/<cluster>/<service>`
    (read by `miniecs why`). `console`: the web console's routes (`GET /`, `/console/...`),
    behind the same Host check."""
    by_prefix = {s.target_prefix: s for s in services if isinstance(s, JsonService)}
    by_version = {s.api_version: s for s in services if isinstance(s, QueryService)}
    app = FastAPI(title="miniecs", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def check_host(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        host = _host_name(request.headers.get("host", ""))
        if allowed_hosts is not None and host not in allowed_hosts:
            return Response(
                content=b'{"__type":"AccessDeniedException","message":"Host not allowed."}',
                status_code=403,
                media_type="application/x-amz-json-1.1",
            )
        return await call_next(request)

    if console is not None:
        app.include_router(console)

    @app.get("/_miniecs/health")
    async def health() -> dict[str, object]:
        names = [*by_prefix, *(q.model.service_name for q in by_version.values())]
        return {"status": "ok", "services": sorted(names)}

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

    @app.post("/service/{target_prefix}/operation/{operation}")
    async def dispatch_cbor(target_prefix: str, operation: str, request: Request) -> Response:
        """Smithy RPC v2 CBOR (CloudWatch in current botocore)."""
        service = by_prefix.get(target_prefix)
        if not isinstance(service, RpcV2CborService):
            return Response(
                content=cbor2.dumps(
                    {"__type": "UnknownOperationException", "message": "Unknown service."}
                ),
                status_code=404,
                headers=dict(RpcV2CborService.CBOR_HEADERS),
            )
        wire = await service.handle_cbor(operation, await request.body())
        return Response(content=wire.body, status_code=wire.status, headers=wire.headers)

    @app.post("/")
    async def dispatch(request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        content_type = request.headers.get("content-type", "")
        if not target and content_type.startswith("application/x-www-form-urlencoded"):
            body = await request.body()
            version = dict(parse_qsl(body.decode("utf-8", "replace"))).get("Version", "")
            query = by_version.get(version)
            if query is not None:
                wire = await query.handle(body)
                return Response(content=wire.body, status_code=wire.status, headers=wire.headers)
        service = by_prefix.get(target.partition(".")[0])
        if service is None:
            return Response(
                content=b'{"__type":"UnknownOperationException","message":"Unknown target."}',
                status_code=400,
                media_type="application/x-amz-json-1.1",
            )
        wire = await service.handle(target, await request.body())
        return Response(content=wire.body, status_code=wire.status, headers=wire.headers)

    return app
