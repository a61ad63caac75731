"""Who may talk to the endpoint: a strict Host parser, browser cross-site markers, SigV4 headers.

miniecs drives the Docker socket, so a call that reaches it is root-equivalent on the host. A web
page must not be able to make one: the Host check stops DNS rebinding, `cross_site` refuses what
a browser marks as coming from another site (`Origin`, `Sec-Fetch-Site`), and AWS API calls must
carry a SigV4 `Authorization` header, which a browser never sends cross-origin without a CORS
preflight (which miniecs never grants). Signatures are not verified: any credentials work, as
with other emulators. Pure functions of header values; `app.py` turns their verdicts into
responses.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
"""Loopback names: what `--host` may be for a loopback-bound endpoint, and the Host header
names (as `host_name` returns them) that endpoint accepts."""

_HOST = re.compile(
    r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def host_name(header: str) -> str | None:
    """The name of a `Host` header (`name[:port]`, IPv6 in brackets), lower-cased, or None when
    the header is not a well-formed host: `[::1]evil.com`, `localhost:80:80`, a port beyond
    65535, spaces, user info and empty headers are all refused."""
    match = _HOST.fullmatch(header)
    if match is None:
        return None
    port = match.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        return None
    name = match.group("name").lower()
    if name.startswith("["):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            return None
    return name


def is_loopback(name: str) -> bool:
    """`localhost`, an address in 127.0.0.0/8 or `[::1]` (a name as `host_name` returns it)."""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def _loopback_origin(origin: str) -> bool:
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme not in ("http", "https"):
        return False
    name = host_name(rest)
    return name is not None and is_loopback(name)


def cross_site(origin: str | None, fetch_site: str | None) -> str | None:
    """Why a request with these browser headers comes from another site (None: it does not).
    Browsers send `Origin` on cross-origin requests and form POSTs, and `Sec-Fetch-Site` on all
    requests; a page served from loopback (a local dev tool) may call, any other may not."""
    if origin is not None and not _loopback_origin(origin):
        return f"Origin {origin[:100]!r} is not a loopback origin."
    if fetch_site in ("cross-site", "same-site") and origin is None:
        return f"Sec-Fetch-Site: {fetch_site} from a site that is not loopback."
    return None


@dataclass(frozen=True, slots=True)
class Credential:
    """The scope of a SigV4 `Authorization` header."""

    access_key: str
    date: str
    region: str
    service: str


@dataclass(frozen=True, slots=True)
class AuthProblem:
    """A request without a usable SigV4 header: `missing` (no header at all, AWS's
    MissingAuthenticationToken) or an IncompleteSignature with AWS's message."""

    missing: bool
    message: str


_ALGORITHM = "AWS4-HMAC-SHA256"
_MISSING = "Request is missing Authentication Token"
_DATE = re.compile(r"[0-9]{8}")


def authorization(header: str | None, has_date: bool) -> Credential | AuthProblem:
    """The credential scope of a SigV4 `Authorization` header (`AWS4-HMAC-SHA256
    Credential=AKID/20260101/us-east-1/ecs/aws4_request, SignedHeaders=..., Signature=...`),
    or what is wrong with it, in AWS's words. `has_date`: X-Amz-Date or Date is present."""
    if not header:
        return AuthProblem(True, _MISSING)
    shown = header if len(header) <= 300 else header[:300] + "..."
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != _ALGORITHM:
        return AuthProblem(
            False, f"Unsupported AWS 'algorithm': '{algorithm[:40]}'. Authorization={shown}"
        )
    params: dict[str, str] = {}
    for part in re.split(r"[,\s]+", rest):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            return AuthProblem(
                False,
                f"'{part[:100]}' not a valid key=value pair (missing equal-sign) in "
                f"Authorization header: '{shown}'.",
            )
        params[key] = value
    needs = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name)
    ]
    if not has_date:
        needs.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if needs:
        return AuthProblem(False, " ".join(needs) + f" Authorization={shown}")
    scope = params["Credential"].split("/")
    if len(scope) != 5 or not all(scope) or not _DATE.fullmatch(scope[1]):
        return AuthProblem(
            False,
            f"Credential should be scoped to a valid region, not '{params['Credential'][:100]}'.",
        )
    if scope[4] != "aws4_request":
        return AuthProblem(
            False,
            f"Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{scope[4][:40]}'.",
        )
    return Credential(scope[0], scope[1], scope[2], scope[3])
