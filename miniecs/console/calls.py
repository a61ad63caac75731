"""Call an AWS operation the endpoint serves, in-process, exactly as the API does.

The request is checked against botocore's input shape, the same handler the endpoint runs is
called, and the result is returned in the JSON form of the output shape (timestamps as epoch
seconds), whichever wire protocol the service speaks. Faults are the service's `AwsError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from miniecs.aws.protocols import JsonService, call_handler, encode
from miniecs.aws.query import QueryService
from miniecs.aws.validate import serialization_error, validate_request
from miniecs.errors import AwsError


class AwsCalls:
    """The endpoint's services by botocore name (`ecs`, `elbv2`, `application-autoscaling`,
    `cloudwatch`); the first one registered under a name wins."""

    def __init__(self, services: Iterable[JsonService | QueryService]) -> None:
        self.services: dict[str, JsonService | QueryService] = {}
        for service in services:
            self.services.setdefault(service.model.service_name, service)

    def has(self, service: str) -> bool:
        return service in self.services

    async def __call__(self, api: str, operation: str, /, **request: Any) -> dict[str, Any]:
        """Run `operation` with `request` (members given as None are left out)."""
        request = {k: v for k, v in request.items() if v is not None}
        target = self.services.get(api)
        if target is None:
            raise AwsError(f"Service {api} is not served here.", code="UnknownService")
        if isinstance(target, JsonService):
            return await target.invoke(operation, request)
        if operation not in target.model.operation_names:
            raise AwsError(f"Could not find operation {operation}", code="InvalidAction")
        op_model = target.model.operation_model(operation)
        request = validate_request(
            target.model.service_name, op_model.input_shape, request, serialization_error
        )
        result = await call_handler(target.handlers, operation, request)
        if op_model.output_shape is None:
            return {}
        encoded: dict[str, Any] = encode(op_model.output_shape, result, False)
        return encoded
