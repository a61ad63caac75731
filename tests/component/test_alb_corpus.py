"""The ALB data plane against a corpus of raw client requests and raw target responses.

Client cases follow the public corpora of AWS's http-desync-guardian (``tests/*.yaml``, named
``guardian <file>: <case>``) and Http11Probe (``docs/content/docs/<path>``, named ``probe
<path>``); each case's bytes are written here from the case's description. Every case runs on
its own connection to an in-process data plane in ``defensive`` mode, and asserts the status
the client gets, whether the load balancer closed the connection, and the exact bytes the
target received (``PORT`` and ``TRACE`` stand for the listener port and the trace id).

Target cases are raw responses (or a reset, or a close) from a scripted target, each asserting
the status, the closing, and the exact bytes the client received.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

from tests.alb_raw import CLOSE, KEEP, RESET, Answer, RawTarget
from tests.alb_support import config, data_plane
from tests.conftest import free_port

SUFFIX = (
    b"X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: PORT\r\n"
    b"X-Amzn-Trace-Id: TRACE\r\n\r\n"
)
"""What the load balancer adds to every forwarded head."""
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
POST = b"POST / HTTP/1.1\r\nHost: a\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"
HELLO = b"5\r\nhello\r\n0\r\n\r\n"
G, P = "guardian", "probe"


@dataclass(frozen=True)
class Case:
    source: str
    raw: bytes
    status: int
    closed: bool
    target: bytes
    """Exactly what the target receives (b"": nothing)."""


def refused(source: str, raw: bytes, status: int = 400) -> Case:
    return Case(source, raw, status, True, b"")


def passed(source: str, raw: bytes, target: bytes, closed: bool = False) -> Case:
    """Forwarded: ``target`` is the rebuilt head (without the suffix) and body."""
    head, _, body = target.partition(b"\r\n\r\n")
    return Case(source, raw, 200, closed, head + b"\r\n" + SUFFIX + body)


def ambiguous(source: str, raw: bytes, target: bytes) -> Case:
    """Forwarded, then both connections closed (defensive mode)."""
    return passed(source, raw, target, closed=True)


CLIENT: list[Case] = [
    # http-desync-guardian, Severe
    refused(
        f"{G} severe: Multiple Content-Length",
        POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ),
    refused(
        f"{G} severe: Bad Content-Length: 1000,1000", POST + b"Content-Length: 1000,1000\r\n\r\n"
    ),
    refused(
        f"{G} severe: Bad Content-Length: 1000 1000", POST + b"Content-Length: 1000 1000\r\n\r\n"
    ),
    refused(
        f"{G} severe: Bad Content-Length: 1000.1000", POST + b"Content-Length: 1000.1000\r\n\r\n"
    ),
    refused(
        f"{G} severe: Bad Content-Length (64-bits overflow)",
        POST + b"Content-Length: 18446744073709551617\r\n\r\n",
    ),
    refused(
        f"{G} severe: Unknown Transfer-Encoding: xchunked",
        POST + b"Transfer-Encoding: xchunked\r\n\r\n",
    ),
    refused(
        f"{G} severe: Bad character in Transfer-Encoding value",
        POST + b"Transfer-Encoding: chunked\x11\r\n\r\n0\r\n\r\n",
    ),
    refused(
        f"{G} severe: Bad character in Content-Length value",
        POST + b"Content-Length: 5\x11\r\n\r\nhello",
    ),
    refused(
        f"{G} severe: Multiple Transfer-Encoding: chunked",
        POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + HELLO,
    ),
    refused(
        f"{G} severe: Multiple Transfer-Encoding: chunked,chunked",
        POST + b"Transfer-Encoding: chunked,chunked\r\n\r\n" + HELLO,
    ),
    refused(
        f"{G} severe: Multiline headers are deprecated",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    ),
    refused(
        f"{G} severe: Multiline headers (with \\n only)",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\n c\r\n\r\n",
    ),
    refused(f"{G} severe: Http Engine missed CR", b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"),
    refused(f"{G} severe: Http Engine missed LF", b"GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n"),
    refused(f"{G} severe: \\r in name is bad", b"GET / HTTP/1.1\r\nHost: a\r\nX\r-A: b\r\n\r\n"),
    refused(f"{G} severe: \\0 in name is bad", b"GET / HTTP/1.1\r\nHost: a\r\nX\x00A: b\r\n\r\n"),
    refused(
        f"{G} severe: \\0 in value is bad", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n"
    ),
    refused(
        f"{G} severe: \\0 at the start of a line",
        b"GET / HTTP/1.1\r\nHost: a\r\n\x00X-A: b\r\n\r\n",
    ),
    refused(
        f"{G} severe: Content-Length[white-space] and Content-Length",
        POST + b"Content-Length : 5\r\nContent-Length: 5\r\n\r\nhello",
    ),
    refused(
        f"{G} severe: [white-space]Content-Length and Content-Length",
        POST + b" Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    ),
    refused(f"{G} severe: Bad method", b"G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n"),
    # http-desync-guardian, Ambiguous
    refused(
        f"{G} ambiguous: Transfer-Encoding with a trailing space in name",
        POST + b"Transfer-Encoding : chunked\r\n\r\n" + HELLO,
    ),
    refused(
        f"{G} ambiguous: Transfer-Encoding with a trailing tab in name",
        POST + b"Transfer-Encoding\t: chunked\r\n\r\n" + HELLO,
    ),
    refused(
        f"{G} ambiguous: \\x01Transfer-Encoding",
        POST + b"\x01Transfer-Encoding: chunked\r\n\r\n" + HELLO,
    ),
    refused(
        f"{G} ambiguous: Transfer-Encoding with a space in the middle",
        POST + b"Transfer Encoding: chunked\r\n\r\n" + HELLO,
    ),
    ambiguous(
        f"{G} ambiguous: Transfer_Encoding with underscore.",
        POST + b"Transfer_Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer_Encoding: chunked\r\nHost: a\r\n\r\n",
    ),
    ambiguous(
        f"{G} ambiguous: Content_Length with underscore.",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent_Length: 5\r\nHost: a\r\n\r\n",
    ),
    refused(
        f"{G} ambiguous: Duplicate Content-Length",
        POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    ),
    refused(
        f"{G} ambiguous: Both Transfer-Encoding:chunked and Content-Length",
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" + HELLO,
    ),
    ambiguous(
        f"{G} ambiguous: Get with a body and Content-Length",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\n\r\nhello",
    ),
    ambiguous(
        f"{G} ambiguous: Get with a body and Transfer-Encoding",
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + HELLO,
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: a\r\n\r\n" + HELLO,
    ),
    Case(
        f"{G} ambiguous: Head with a body and Content-Length",
        b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        200,
        True,
        b"HEAD / HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\n" + SUFFIX + b"hello",
    ),
    refused(
        f"{G} ambiguous: Transfer-Encoding for HTTP/1.0",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + HELLO,
    ),
    refused(
        f"{G} ambiguous: Transfer-Encoding for HTTP/0.9",
        b"POST /\r\nTransfer-Encoding: chunked\r\n\r\n" + HELLO,
    ),
    refused(f"{G} ambiguous: Empty header name", b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"),
    refused(
        f"{G} ambiguous: Header name starts with :", b"GET / HTTP/1.1\r\nHost: a\r\n:X: x\r\n\r\n"
    ),
    refused(
        f"{G} ambiguous: Only white-spaces header name",
        b"GET / HTTP/1.1\r\nHost: a\r\n   : x\r\n\r\n",
    ),
    ambiguous(
        f"{G} ambiguous: Transfer-Encoding with multiple hyphens",
        POST + b"Transfer--Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer--Encoding: chunked\r\nHost: a\r\n\r\n",
    ),
    refused(
        f"{G} ambiguous: Transfer-Encoding Latin Small Letter Dotless I",
        POST + "Transfer-Encod\u0131ng: chunked\r\n\r\n".encode() + HELLO,
    ),
    refused(
        f"{G} ambiguous: Transfer-Encoding with UTF8 spaces",
        POST + "Transfer\u2000Encoding: chunked\r\n\r\n".encode() + HELLO,
    ),
    # http-desync-guardian, Acceptable (llhttp refuses control characters in any value)
    refused(
        f"{G} acceptable: A non-essential header with a non-printable character (x01)",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01\r\n\r\n",
    ),
    passed(
        f"{G} acceptable: No TE/CL headers, some others are non-compliant",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-A: caf\xe9\r\nHost: a\r\n\r\n",
    ),
    passed(
        f"{G} acceptable: Get with a body and Content-Length:0",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 0\r\nHost: a\r\n\r\n",
    ),
    refused(f"{G} acceptable: Non-RFC, but OK HTTP/0.9", b"GET /\r\n\r\n"),
    refused(f"{G} acceptable: Unknown but OK HTTP/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
    # http-desync-guardian, real-life test cases
    refused(
        f"{G} real-life: Two Identical Fields - TE",
        POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    refused(
        f"{G} real-life: Transfer-Encoding[tab]: chunked",
        POST + b"Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n",
    ),
    refused(
        f"{G} real-life: \\rTransfer-Encoding: chunked",
        POST + b"\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    refused(
        f"{G} real-life: Transfer-Encoding: chunk",
        POST + b"Transfer-Encoding: chunk\r\n\r\n0\r\n\r\n",
    ),
    refused(
        f"{G} real-life: Transfer-Encoding: identity and Content-Length",
        POST + b"Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello",
    ),
    passed(
        f"{G} real-life: Mixed case",
        POST + b"tRaNsFeR-EnCoDiNg: chunked\r\n\r\n" + HELLO,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: a\r\n\r\n" + HELLO,
    ),
    refused(
        f"{G} real-life: \\x00Transfer-Encoding: chunked",
        POST + b"\x00Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    refused(
        f"{G} real-life: Transfer-Encoding: \\x00chunked",
        POST + b"Transfer-Encoding: \x00chunked\r\n\r\n0\r\n\r\n",
    ),
    # Http11Probe, smuggling
    refused(f"{P} smuggling/chunk-spill", CHUNKED + b"5\r\nhello!!\r\n0\r\n\r\n"),
    refused(f"{P} smuggling/chunk-underscore", CHUNKED + b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n"),
    refused(
        f"{P} smuggling/te-case-mismatch",
        POST + b"Transfer-Encoding: Chunked\r\nContent-Length: 5\r\n\r\n" + HELLO,
    ),
    ambiguous(
        f"{P} smuggling/cl-double-zero",
        POST + b"Content-Length: 00\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 0\r\nHost: a\r\n\r\n",
    ),
    ambiguous(
        f"{P} smuggling/cl-leading-zeros",
        POST + b"Content-Length: 005\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\n\r\nhello",
    ),
    refused(
        f"{P} smuggling/chunked-with-params",
        POST + b"Transfer-Encoding: chunked;ext=val\r\nContent-Length: 5\r\n\r\n" + HELLO,
    ),
    refused(
        f"{P} smuggling/te-trailing-comma",
        POST + b"Transfer-Encoding: chunked,\r\nContent-Length: 5\r\n\r\n" + HELLO,
    ),
    refused(
        f"{P} smuggling/te-leading-comma",
        POST + b"Transfer-Encoding: , chunked\r\nContent-Length: 5\r\n\r\n" + HELLO,
    ),
    refused(f"{P} smuggling/chunk-lf-term", CHUNKED + b"5\r\nhello\n0\r\n\r\n"),
    refused(f"{P} smuggling/chunk-hex-prefix", CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n"),
    refused(f"{P} smuggling/chunk-leading-sp", CHUNKED + b" 5\r\nhello\r\n0\r\n\r\n"),
    refused(f"{P} smuggling/chunk-size-plus", CHUNKED + b"+5\r\nhello\r\n0\r\n\r\n"),
    refused(f"{P} smuggling/chunk-negative", CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n"),
    refused(f"{P} smuggling/chunk-bare-cr-term", CHUNKED + b"5\rhello\r\n0\r\n\r\n"),
    refused(f"{P} smuggling/cl-negative-zero", POST + b"Content-Length: -0\r\n\r\n"),
    refused(
        f"{P} smuggling/cl-plus (content-length/cl-plus-sign)",
        POST + b"Content-Length: +5\r\n\r\nhello",
    ),
    refused(f"{P} smuggling/cl-hex-prefix", POST + b"Content-Length: 0x5\r\n\r\nhello"),
    refused(f"{P} smuggling/cl-underscore", POST + b"Content-Length: 1_0\r\n\r\n0123456789"),
    refused(f"{P} smuggling/cl-comma-different", POST + b"Content-Length: 5, 6\r\n\r\nhello!"),
    refused(f"{P} smuggling/te-obs-fold", POST + b"Transfer-Encoding:\r\n chunked\r\n\r\n" + HELLO),
    refused(f"{P} smuggling/te-vtab", POST + b"Transfer-Encoding:\x0bchunked\r\n\r\n" + HELLO),
    refused(f"{P} smuggling/te-formfeed", POST + b"Transfer-Encoding:\x0cchunked\r\n\r\n" + HELLO),
    refused(f"{P} smuggling/te-empty-value", POST + b"Transfer-Encoding: \r\n\r\n"),
    refused(
        f"{P} smuggling/te-not-final-chunked",
        POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n" + HELLO,
    ),
    refused(
        f"{P} smuggling/clte-desync",
        POST + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
    ),
    refused(
        f"{P} smuggling/tecl-desync",
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1\r\nG\r\n0\r\n\r\n",
    ),
    refused(
        f"{P} smuggling/bare-cr-header-value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n"
    ),
    ambiguous(
        f"{P} smuggling/transfer-encoding-underscore",
        POST + b"Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\nHost: a\r\n"
        b"\r\nhello",
    ),
    passed(
        f"{P} smuggling/trailer-auth",
        CHUNKED + b"5\r\nhello\r\n0\r\nAuthorization: Bearer evil\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: a\r\n\r\n" + HELLO,
    ),
    passed(
        f"{P} smuggling/trailer-host",
        CHUNKED + b"5\r\nhello\r\n0\r\nHost: evil.example.com\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: a\r\n\r\n" + HELLO,
    ),
    # llhttp refuses framing headers among trailers (nothing reached the target: one read).
    refused(
        f"{P} smuggling/trailer-cl", CHUNKED + b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"
    ),
    refused(
        f"{P} smuggling/trailer-te",
        CHUNKED + b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
    ),
    Case(
        f"{P} smuggling/pipeline-safe",
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
        200,
        False,
        b"GET /1 HTTP/1.1\r\nHost: a\r\n" + SUFFIX + b"GET /2 HTTP/1.1\r\nHost: a\r\n" + SUFFIX,
    ),
    # Http11Probe, request line, headers, host, malformed input
    refused(f"{P} request-line/multi-sp-request-line", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
    refused(
        f"{P} request-line/multi-sp-request-line (before the version)",
        b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
    ),
    refused(f"{P} request-line/request-line-tab", b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"),
    refused(f"{P} request-line/http09-request", b"GET /\r\nHost: a\r\n\r\n"),
    refused(f"{P} request-line/method-case", b"get / HTTP/1.1\r\nHost: a\r\n\r\n"),
    refused(f"{P} request-line/version-case", b"GET / http/1.1\r\nHost: a\r\n\r\n"),
    refused(f"{P} request-line/version-leading-zeros", b"GET / HTTP/01.1\r\nHost: a\r\n\r\n"),
    refused(f"{P} request-line/version-missing-minor", b"GET / HTTP/1\r\nHost: a\r\n\r\n"),
    refused(f"{P} request-line/version-whitespace", b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n"),
    refused(f"{P} request-line/space-in-target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
    refused(f"{P} request-line/method-connect", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
    refused(f"{P} headers/whitespace-before-headers", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
    refused(f"{P} headers/sp-before-colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
    refused(f"{P} headers/header-no-colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n"),
    refused(f"{P} headers/invalid-header-name", b"GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n"),
    refused(f"{P} host-header/missing-host", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n"),
    refused(f"{P} host-header/duplicate-host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    refused(
        f"{P} host-header/duplicate-host-same", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"
    ),
    refused(
        f"{P} malformed-input/binary-garbage",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ),
    refused(f"{P} malformed-input/nul-in-url", b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n"),
    refused(f"{P} malformed-input/non-ascii-url", "GET /café HTTP/1.1\r\nHost: a\r\n\r\n".encode()),
    refused(
        f"{P} malformed-input/non-ascii-header-name",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Ä: b\r\n\r\n".encode(),
    ),
    refused(
        f"{P} malformed-input/control-chars-header",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: \x07\r\n\r\n",
    ),
    refused(f"{P} malformed-input/whitespace-only-line", b"GET / HTTP/1.1\r\nHost: a\r\n \r\n\r\n"),
    refused(
        f"{P} malformed-input/chunk-size-overflow",
        CHUNKED + b"ffffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
    ),
    refused(
        f"{P} malformed-input/cl-overflow", POST + b"Content-Length: 99999999999999999999\r\n\r\n"
    ),
    refused(f"{P} malformed-input/cl-empty", POST + b"Content-Length: \r\n\r\n"),
    refused(f"{P} malformed-input/h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    passed(
        f"{P} headers/connection-close",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        closed=True,
    ),
    passed(
        f"{P} host-header/http10-no-host",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        closed=True,
    ),
]

TRACE = re.compile(rb"X-Amzn-Trace-Id: Root=1-[0-9a-f]{8}-[0-9a-f]{24}")


def normalised(data: bytes, port: int) -> bytes:
    data = TRACE.sub(b"X-Amzn-Trace-Id: TRACE", data)
    return data.replace(b"X-Forwarded-Port: %d\r\n" % port, b"X-Forwarded-Port: PORT\r\n")


async def converse(port: int, raw: bytes, quiet: float = 0.25) -> tuple[bytes, bool]:
    """Send ``raw``; everything received until the load balancer closes the connection
    (True) or stays quiet for ``quiet`` seconds after answering (False)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    chunks: list[bytes] = []
    closed = False
    try:
        async with asyncio.timeout(3):
            while True:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), quiet if chunks else 3)
                except TimeoutError:
                    break
                if not chunk:
                    closed = True
                    break
                chunks.append(chunk)
    except ConnectionResetError:
        closed = True
    except TimeoutError:
        pass  # no answer at all
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return b"".join(chunks), closed


def status_of(data: bytes) -> int:
    """The status of the final response in ``data`` (0: none)."""
    status = 0
    while data.startswith(b"HTTP/1.1 "):
        status = int(data[9:12]) if data[9:12].isdigit() else 0
        if not 100 <= status < 200:
            break
        data = data[data.find(b"\r\n\r\n") + 4 :]
    return status


async def test_raw_client_cases(tmp_path: Path) -> None:
    target = RawTarget([Answer(OK)])
    await target.start()
    port = free_port()
    failures = []
    async with data_plane(tmp_path, config(port, [target.port])) as dp:
        for case in CLIENT:
            before = len(target.raw)
            data, closed = await converse(port, case.raw)
            await asyncio.sleep(0.01)
            got = normalised(target.raw[before:], port)
            if (status_of(data), closed, got) != (case.status, case.closed, case.target):
                failures.append(f"{case.source}: {status_of(data)} closed={closed} {got!r}")
        counters = dp.plane.counters
    await target.stop()
    assert not failures, "\n".join(failures)
    refused = sum(1 for c in CLIENT if c.status >= 400)
    assert counters.rejected == refused
    assert len(CLIENT) >= 67
    assert len({c.source for c in CLIENT}) == len(CLIENT)


@dataclass(frozen=True)
class Reply:
    source: str
    answer: Answer
    status: int
    closed: bool
    client: bytes
    """Exactly what the client receives."""
    target_error: bool = False


def cut(source: str, data: bytes, client: bytes, then: str = RESET) -> Reply:
    """The response breaks after ``client`` went out: the client connection is reset."""
    return Reply(source, Answer(data, then, 0.1), 200, True, client, True)


def bad(source: str, data: bytes, then: str = KEEP) -> Reply:
    return Reply(
        source, Answer(data, then, 0.1 if then != KEEP else 0.0), 502, False, ELB_502, True
    )


ELB_502 = (
    b"HTTP/1.1 502 Bad Gateway\r\nServer: awselb/2.0\r\nContent-Type: text/html\r\n"
    b"Content-Length: 122\r\n\r\n<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
    b"<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
CHUNKED_OK = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"

TARGET: list[Reply] = [
    Reply("Content-Length, exact", Answer(OK), 200, False, OK),
    Reply(
        "chunked",
        Answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
        200,
        False,
        CHUNKED_OK,
    ),
    Reply(
        "chunked with trailers (dropped)",
        Answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n"
        ),
        200,
        False,
        CHUNKED_OK,
    ),
    Reply(
        "chunked with an extension",
        Answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0\r\n\r\n"),
        200,
        False,
        CHUNKED_OK,
    ),
    Reply(
        "close-delimited, ended by FIN",
        Answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nok", CLOSE),
        200,
        False,
        CHUNKED_OK,
    ),
    Reply(
        "hop-by-hop headers dropped",
        Answer(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
            b"Content-Length: 2\r\n\r\nok"
        ),
        200,
        False,
        OK,
    ),
    Reply(
        "HTTP/1.0 response",
        Answer(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        200,
        False,
        OK,
    ),
    Reply(
        "100 Continue, then 200",
        Answer(b"HTTP/1.1 100 Continue\r\n\r\n" + OK),
        200,
        False,
        b"HTTP/1.1 100 Continue\r\n\r\n" + OK,
    ),
    Reply(
        "204 with a Content-Length (no body is read)",
        Answer(b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n"),
        204,
        False,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n",
    ),
    Reply(
        "bytes after the body (a smuggled response) never reach a client",
        Answer(OK + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"),
        200,
        False,
        OK,
    ),
    cut(
        "close-delimited, reset mid-body",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n",
    ),
    cut(
        "Content-Length, reset mid-body",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart",
    ),
    cut(
        "Content-Length, FIN mid-body",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart",
        CLOSE,
    ),
    cut(
        "chunked, reset mid-body",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n",
    ),
    cut(
        "chunked, FIN before the last chunk",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n",
        CLOSE,
    ),
    bad(
        "invalid chunk size in the first read",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n",
    ),
    bad(
        "Content-Length and Transfer-Encoding",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
    ),
    bad(
        "two different Content-Length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
    ),
    bad("negative Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok"),
    bad("status not three digits", b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok"),
    bad(
        "control character in the reason phrase",
        b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok",
    ),
    bad("bare LF in the head", b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok"),
    bad("obs-fold in the head", b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok"),
    bad("NUL in a header value", b"HTTP/1.1 200 OK\r\nX-A: b\x00c\r\nContent-Length: 2\r\n\r\nok"),
    bad("HTTP/2 status line", b"HTTP/2 200\r\nContent-Length: 2\r\n\r\nok"),
    bad(
        "unsolicited 101 Switching Protocols",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    ),
    bad("closed before a byte", b"", CLOSE),
    bad("reset before a byte", b"", RESET),
    bad("head cut by FIN", b"HTTP/1.1 200 OK\r\nContent-Len", CLOSE),
]


async def test_raw_target_cases(tmp_path: Path) -> None:
    failures = []
    for i, reply in enumerate(TARGET):
        target = RawTarget([reply.answer])
        await target.start()
        port = free_port()
        async with data_plane(tmp_path, config(port, [target.port], version=i + 1)) as dp:
            data, closed = await converse(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            errors = dp.plane.groups["tg"].target_errors
        await target.stop()
        got = (status_of(data), closed, data, errors > 0)
        if got != (reply.status, reply.closed, reply.client, reply.target_error):
            failures.append(f"{reply.source}: {got}")
    assert not failures, "\n".join(failures)
    assert len(TARGET) >= 23
