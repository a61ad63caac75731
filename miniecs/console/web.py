"""The console's routes, mounted on the AWS endpoint's app (same port, same Host check).

- `GET /`: the page, with this server's action token in a `<meta>` tag;
- `GET /console/static/<file>`: its script and style sheet (gzip when the browser accepts it);
- `GET /console/stream`: server-sent events: `history` once, then `view` every tick;
- `GET /console/view`: the same view as one JSON document;
- `GET /console/logs/<cluster>/<task>`: a task's newest log events (CloudWatch Logs, if served);
- `POST /console/actions/<action>`: set desired count, stop a task, force a new deployment,
  switch Container Insights. Refused (403) without the header `X-Miniecs-Console-Token`
  carrying the token, or with an `Origin` that is not this server's, or
  `Sec-Fetch-Site: cross-site`: another site open in the browser can neither read the token
  nor send the header (a custom header needs a CORS preflight, which is never granted).

None of these take SigV4: they are same-origin browser requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hmac
import json
from collections.abc import AsyncIterator
from functools import cache
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from miniecs.console.model import Console
from miniecs.errors import AwsError

TOKEN_HEADER = "x-miniecs-console-token"
PREFIX = "/console"
STATIC = {"console.js": "text/javascript", "console.css": "text/css"}
KEEPALIVE_SECONDS = 15.0
MAX_ACTION_BODY = 4096


@cache
def _static(name: str) -> tuple[bytes, bytes]:
    """A static file's bytes, plain and gzipped."""
    data = resources.files("miniecs.console").joinpath("static", name).read_bytes()
    return data, gzip.compress(data, 9, mtime=0)


def _send(request: Request, name: str, media_type: str) -> Response:
    plain, packed = _static(name)
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
        return Response(packed, media_type=media_type, headers=headers)
    return Response(plain, media_type=media_type, headers=headers)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(payload, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _refused(message: str) -> Response:
    return _json({"__type": "AccessDeniedException", "message": message}, 403)


def cross_site(request: Request) -> str | None:
    """Why a state-changing request does not come from this server's own page (None: it does)."""
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        return "Cross-site requests are refused."
    origin = request.headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        if parts.netloc != request.headers.get("host", ""):
            return f"Origin {origin} is not this console."
    return None


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    @routes.get("/", include_in_schema=False)
    async def page(request: Request) -> Response:
        html, _ = _static("index.html")
        body = html.replace(b"{{token}}", escape(console.token).encode())
        headers = {
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "script-src 'self'; frame-ancestors 'none'"
            ),
            "Referrer-Policy": "no-referrer",
        }
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = gzip.compress(body, 6, mtime=0)
        return Response(body, media_type="text/html; charset=utf-8", headers=headers)

    @routes.get(PREFIX + "/static/{name}", include_in_schema=False)
    async def static(name: str, request: Request) -> Response:
        media_type = STATIC.get(name)
        if media_type is None:
            return Response(status_code=404)
        return _send(request, name, media_type)

    @routes.get(PREFIX + "/view", include_in_schema=False)
    async def view() -> Response:
        return _json(await console.view())

    @routes.get(PREFIX + "/stream", include_in_schema=False)
    async def stream(request: Request) -> StreamingResponse:
        queue = console.subscribe()

        async def events() -> AsyncIterator[bytes]:
            try:
                history = json.dumps(console.history.to_json(), separators=(",", ":"))
                yield f"retry: 1000\nevent: history\ndata: {history}\n\n".encode()
                first = json.dumps(await console.view(), separators=(",", ":"))
                yield f"event: view\ndata: {first}\n\n".encode()
                while True:
                    try:
                        message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if message is None:
                        return
                    yield f"event: view\ndata: {message}\n\n".encode()
            finally:
                console.unsubscribe(queue)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @routes.get(PREFIX + "/logs/{cluster}/{task_id}", include_in_schema=False)
    async def logs(cluster: str, task_id: str) -> Response:
        try:
            events = await asyncio.to_thread(console.task_logs, cluster, task_id)
        except AwsError as exc:
            return _json({"__type": exc.code, "message": exc.message}, 404)
        return _json({"events": events})

    @routes.post(PREFIX + "/actions/{action}", include_in_schema=False)
    async def act(action: str, request: Request) -> Response:
        why = cross_site(request)
        if why is not None:
            return _refused(why)
        token = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), console.token.encode()):
            return _refused("Missing or wrong console token.")
        raw = await request.body()
        if len(raw) > MAX_ACTION_BODY:
            return _json({"__type": "ValidationException", "message": "Body too large."}, 400)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _json(
                {"__type": "SerializationException", "message": "Body must be a JSON object."},
                400,
            )
        try:
            result = await console.act(action, body)
        except AwsError as exc:
            return _json({"__type": exc.code, "message": exc.message}, exc.status)
        with contextlib.suppress(Exception):
            await console.tick()  # the change reaches every open page now, not next tick
        return _json(result)

    return routes
