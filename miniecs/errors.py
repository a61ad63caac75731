"""The one exception tree of miniecs; each error carries the AWS error code a client sees.

AwsError(code, message, status)             any error returned on the wire
├── ClientException                         ECS: bad request the client must fix
├── InvalidParameterException               ECS: a parameter is invalid
├── ClusterNotFoundException
├── ClusterContainsTasksException
├── ClusterContainsServicesException
├── ServiceNotFoundException
├── ServiceNotActiveException
├── ResourceNotFoundException
├── ResourceInUseException                  ECS: a capacity provider still in use
├── ValidationException                     Application Auto Scaling: request refused
├── ObjectNotFoundException                 Application Auto Scaling: no such object
├── SerializationException                  malformed request body
├── UnknownOperationException               X-Amz-Target names no operation
├── InvalidParameterValue                   CloudWatch: a parameter's value is invalid
├── InvalidParameterCombination             CloudWatch: parameters that do not go together
├── MissingParameter                        CloudWatch: a required parameter is absent
├── ValidationError                         CloudWatch GetMetricData: a malformed query
└── ServerException                         a fault on our side (HTTP 500)
RuntimeUnavailable                          the container engine did not answer (not wire-facing)
"""

from __future__ import annotations


class AwsError(Exception):
    """An error with an AWS error code, message and HTTP status."""

    code = "InternalFailure"
    status = 400

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class ClientException(AwsError):
    code = "ClientException"


class InvalidParameterException(AwsError):
    code = "InvalidParameterException"


class ClusterNotFoundException(AwsError):
    code = "ClusterNotFoundException"

    def __init__(self, message: str = "Cluster not found.") -> None:
        super().__init__(message)


class ClusterContainsTasksException(AwsError):
    code = "ClusterContainsTasksException"


class ClusterContainsServicesException(AwsError):
    code = "ClusterContainsServicesException"


class ServiceNotFoundException(AwsError):
    code = "ServiceNotFoundException"

    def __init__(self, message: str = "Service not found.") -> None:
        super().__init__(message)


class ServiceNotActiveException(AwsError):
    code = "ServiceNotActiveException"

    def __init__(self, message: str = "Service was not ACTIVE.") -> None:
        super().__init__(message)


class ResourceNotFoundException(AwsError):
    code = "ResourceNotFoundException"


class ResourceInUseException(AwsError):
    code = "ResourceInUseException"


class SerializationException(AwsError):
    code = "SerializationException"


class UnknownOperationException(AwsError):
    code = "UnknownOperationException"


class InvalidParameterValue(AwsError):
    code = "InvalidParameterValue"


class InvalidParameterCombination(AwsError):
    code = "InvalidParameterCombination"


class MissingParameter(AwsError):
    code = "MissingParameter"


class ValidationError(AwsError):
    code = "ValidationError"


class ValidationException(AwsError):
    """Application Auto Scaling: a request it refuses."""

    code = "ValidationException"


class ObjectNotFoundException(AwsError):
    """Application Auto Scaling: no such scalable target, policy or scheduled action."""

    code = "ObjectNotFoundException"


class ServerException(AwsError):
    code = "ServerException"
    status = 500


class RuntimeUnavailable(Exception):
    """The container engine could not be reached; callers freeze decisions instead of guessing."""
