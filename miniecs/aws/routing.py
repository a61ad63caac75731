"""Answers for requests no emulated service takes, in the protocol the client speaks.

A client of a service miniecs does not emulate (STS, EC2, IAM, CloudFormation, ...) pointed at
the endpoint must get an error its SDK can parse (XML for query services, `<Response><Errors>`
for EC2, JSON for JSON services), naming the service, not JSON that boto3 reports as "invalid
XML received". The service is the one the request's SigV4 credential scope names; its protocol
comes from botocore's model of it. The same writers answer requests refused before any service
is known (no signature, a body too large). Which services miniecs does emulate is the list the
engine gives `create_app`: adding one there is all routing needs.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import escape

import botocore.session
import cbor2
from botocore.exceptions import UnknownServiceError

from .protocols import WireResponse

SIGNING_ALIASES = {
    "monitoring": "cloudwatch",
    "elasticloadbalancing": "elbv2",
    "states": "stepfunctions",
    "email": "ses",
    "es": "opensearch",
    "execute-api": "apigateway",
}
"""SigV4 scope names that differ from botocore's service name."""

_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What the error writers need of a service: its protocol and XML namespace."""

    name: str
    protocol: str
    namespace: str = ""
    json_version: str = "1.1"


@lru_cache(maxsize=256)
def service_info(scope: str) -> ServiceInfo | None:
    """botocore's facts about the service a credential scope names (None: no such model).
    Loads a whole model, so callers run it off the event loop."""
    if not _NAME.fullmatch(scope):
        return None
    name = SIGNING_ALIASES.get(scope, scope)
    try:
        model = botocore.session.get_session().get_service_model(name)
    except UnknownServiceError:
        return None
    meta = model.metadata
    protocols = meta.get("protocols") or [meta.get("protocol", "json")]
    return ServiceInfo(
        name,
        str(protocols[0]),
        str(meta.get("xmlNamespace", "")),
        str(meta.get("jsonVersion", "1.1")),
    )


def request_protocol(path: str, target: str, content_type: str) -> str:
    """The protocol a request is written in, from its shape: `smithy-rpc-v2-cbor`
    (`/service/<prefix>/operation/<op>`), `json` (an X-Amz-Target), `query` (a form POST) or
    `rest` (anything else: REST-JSON/REST-XML services)."""
    if path.startswith("/service/") and "/operation/" in path:
        return "smithy-rpc-v2-cbor"
    if target:
        return "json"
    if content_type.startswith("application/x-www-form-urlencoded"):
        return "query"
    if content_type.startswith("application/x-amz-json"):
        return "json"
    return "rest"


def error_response(
    protocol: str,
    code: str,
    message: str,
    status: int,
    info: ServiceInfo | None = None,
) -> WireResponse:
    """`code` and `message` encoded as `protocol` encodes errors (`info` refines the REST and
    query forms: EC2's own XML, a REST-JSON or REST-XML service)."""
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id}
    if info is not None and protocol in ("query", "rest") and info.protocol == "ec2":
        protocol = "ec2"
    elif info is not None and protocol == "rest":
        protocol = info.protocol
    if protocol == "smithy-rpc-v2-cbor":
        body = cbor2.dumps({"__type": code, "message": message})
        headers |= {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
        return WireResponse(status, body, headers)
    if protocol in ("json", "rest-json", "rest"):
        version = info.json_version if info is not None else "1.1"
        kind = "application/json" if protocol != "json" else f"application/x-amz-json-{version}"
        headers |= {"Content-Type": kind, "x-amzn-ErrorType": code}
        return WireResponse(
            status, json.dumps({"__type": code, "message": message}).encode(), headers
        )
    headers["Content-Type"] = "text/xml"
    if protocol == "ec2":
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return WireResponse(status, xml.encode(), headers)
    namespace = f' xmlns="{escape(info.namespace)}"' if info is not None and info.namespace else ""
    kind = "Receiver" if status >= 500 else "Sender"
    xml = (
        f"<ErrorResponse{namespace}><Error><Type>{kind}</Type><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId>"
        "</ErrorResponse>"
    )
    return WireResponse(status, xml.encode(), headers)


def not_emulated(
    scope: str, protocol: str, info: ServiceInfo | None, emulated: list[str]
) -> WireResponse:
    """The answer to a request for a service miniecs does not emulate: `NotImplemented` (HTTP
    501, which SDKs do not retry), naming the service and the ones miniecs does emulate."""
    name = info.name if info is not None else scope
    message = (
        f"The service {name!r} is not emulated by miniecs; it emulates "
        f"{', '.join(sorted(emulated))}."
    )
    return error_response(protocol, "NotImplemented", message, 501, info)
