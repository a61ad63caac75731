"""The HTTP front of the AWS endpoint: one port, dispatched by protocol to a service.

AWS JSON services are found by the `X-Amz-Target` prefix. The ASGI app is only the control
plane's door (a few requests a second); the ALB's data plane never goes through it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from .protocols import JsonService


def create_app(services: list[JsonService]) -> FastAPI:
    by_prefix = {s.target_prefix: s for s in services}
    app = FastAPI(title="miniecs", docs_url=None, redoc_url=None, openapi_url=None)

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
