"""Responses the load balancer writes itself: its errors, fixed responses and redirects.

Bodies and headers follow what an ALB sends (``Server: awselb/2.0``, its small HTML error
pages). Error responses are built once per (status, keep-alive) and reused.
"""

from __future__ import annotations

from http import HTTPStatus

REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
    505: "HTTP Version Not Supported",
}
SERVER = b"Server: awselb/2.0\r\n"

_errors: dict[tuple[int, bool], bytes] = {}


def reason(status: int) -> str:
    known = REASONS.get(status)
    if known is None:
        try:
            known = HTTPStatus(status).phrase
        except ValueError:
            known = "Unknown"
    return known


def connection_header(keep_alive: bool) -> bytes:
    return b"" if keep_alive else b"Connection: close\r\n"


def elb_error(status: int, keep_alive: bool) -> bytes:
    """The load balancer's own error page for ``status``."""
    key = (status, keep_alive)
    cached = _errors.get(key)
    if cached is None:
        title = f"{status} {reason(status)}"
        body = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
        ).encode()
        cached = _errors[key] = build(status, b"text/html", body, keep_alive)
    return cached


def build(
    status: int, content_type: bytes, body: bytes, keep_alive: bool, extra: bytes = b""
) -> bytes:
    """A complete response with a Content-Length body."""
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason(status).encode()),
            SERVER,
            b"Content-Type: %s\r\nContent-Length: %d\r\n" % (content_type, len(body)),
            extra,
            connection_header(keep_alive),
            b"\r\n",
            body,
        )
    )


def redirect(status: int, location: str, keep_alive: bool) -> bytes:
    return build(
        status,
        b"text/html",
        b"",
        keep_alive,
        b"Location: %s\r\n" % location.encode("latin-1", "replace"),
    )
