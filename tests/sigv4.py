"""Raw HTTP requests signed as SDKs sign them (botocore's SigV4Auth), for tests that need a
body or headers boto3 would not send. miniecs refuses unsigned AWS API calls."""

from __future__ import annotations

from typing import Any

import httpx


def sign(
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    service: str = "ecs",
    region: str = "us-east-1",
) -> dict[str, str]:
    """`headers` plus the SigV4 headers (Authorization, X-Amz-Date) for this request."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials("test", "test"), service, region).add_auth(request)
    return dict(request.headers.items())


def post(
    url: str,
    content: bytes = b"",
    headers: dict[str, str] | None = None,
    service: str = "ecs",
    **kwargs: Any,
) -> httpx.Response:
    """A signed POST (the way every AWS SDK sends API calls)."""
    return httpx.post(
        url, content=content, headers=sign("POST", url, content, headers, service), **kwargs
    )
