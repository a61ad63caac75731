"""The HTTP front of the AWS endpoint: one port, dispatched by protocol to a service.

AWS JSON services are found by the `X-Amz-Target` prefix. The ASGI app is only the control
plane's door (a few requests a second); the ALB's data plane never goes through it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from .protocols import JsonService

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _host_name(header: str) -> str:
    if header.startswith("["):
        return header.partition("]")[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def create_app(services: list[JsonService], allowed_hosts: frozenset[str] | None) -> FastAPI:
    """`allowed_hosts`: Host header names accepted (None: any). A loopback-bound endpoint
    accepts only loopback names, so a web page cannot reach it through DNS rebinding."""
    by_prefix = {s.target_prefix: s for s in services}
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

    @app.get("/_miniecs/health")
    async def health() -> dict[str, object]:
        return {"status": "ok", "services": sorted(by_prefix)}

    @app.post("/")
    async def dispatch(request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
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
