"""The endpoint's door: Host checks against DNS rebinding, dispatch by X-Amz-Target."""

from __future__ import annotations

from typing import Any

import httpx

from miniecs.aws.app import LOOPBACK_NAMES, create_app
from miniecs.aws.protocols import JsonService


class Handlers:
    def list_clusters(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"clusterArns": []}


async def post(host: str, allowed: frozenset[str] | None) -> httpx.Response:
    app = create_app([JsonService("ecs", Handlers())], allowed)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
        return await client.post(
            "/", headers={"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters"}
        )


async def test_loopback_names_are_accepted() -> None:
    for host in ("127.0.0.1:4566", "localhost:4566", "[::1]:4566"):
        response = await post(host, LOOPBACK_NAMES)
        assert response.status_code == 200, host


async def test_other_host_names_are_refused_on_a_loopback_endpoint() -> None:
    response = await post("attacker.example:4566", LOOPBACK_NAMES)
    assert response.status_code == 403
    assert (await post("miniecs:4566", None)).status_code == 200
