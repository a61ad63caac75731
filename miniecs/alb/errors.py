"""ELBv2's error codes (the `Code` of a query-protocol error), with AWS's default wording.

AwsError (miniecs.errors)
├── ValidationError (miniecs.errors, re-exported) a malformed or out-of-range parameter
└── ElbError                    an ELBv2 code whose message defaults to AWS's wording
    ├── LoadBalancerNotFound, TargetGroupNotFound, ListenerNotFound, RuleNotFound
    ├── DuplicateLoadBalancerName, DuplicateTargetGroupName, DuplicateListener
    ├── PriorityInUse, ResourceInUse, InvalidTarget, TooManyTags
    └── InvalidConfigurationRequest, InvalidLoadBalancerAction, OperationNotPermitted
"""

from __future__ import annotations

from miniecs.errors import AwsError, ValidationError

__all__ = [
    "DuplicateListener",
    "DuplicateLoadBalancerName",
    "DuplicateTargetGroupName",
    "ElbError",
    "InvalidConfigurationRequest",
    "InvalidLoadBalancerAction",
    "InvalidTarget",
    "ListenerNotFound",
    "LoadBalancerNotFound",
    "OperationNotPermitted",
    "PriorityInUse",
    "ResourceInUse",
    "RuleNotFound",
    "TargetGroupNotFound",
    "TooManyTags",
    "ValidationError",
]


class ElbError(AwsError):
    """An ELBv2 error (HTTP 400); without a message it carries AWS's default wording."""

    default = "The request is not valid."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default)


class LoadBalancerNotFound(ElbError):
    code = "LoadBalancerNotFound"
    default = "One or more load balancers not found"


class TargetGroupNotFound(ElbError):
    code = "TargetGroupNotFound"
    default = "One or more target groups not found"


class ListenerNotFound(ElbError):
    code = "ListenerNotFound"
    default = "One or more listeners not found"


class RuleNotFound(ElbError):
    code = "RuleNotFound"
    default = "One or more rules not found"


class DuplicateLoadBalancerName(ElbError):
    code = "DuplicateLoadBalancerName"
    default = "A load balancer with the same name already exists"


class DuplicateTargetGroupName(ElbError):
    code = "DuplicateTargetGroupName"
    default = "A target group with the same name already exists"


class DuplicateListener(ElbError):
    code = "DuplicateListener"
    default = "A listener with the specified port already exists"


class PriorityInUse(ElbError):
    code = "PriorityInUse"
    default = "The specified priority is in use"


class ResourceInUse(ElbError):
    code = "ResourceInUse"
    default = "A specified resource is in use"


class InvalidTarget(ElbError):
    code = "InvalidTarget"
    default = "The specified target does not exist or is not in the same VPC as the target group"


class TooManyTags(ElbError):
    code = "TooManyTags"
    default = "You've reached the limit on the number of tags for this resource"


class InvalidConfigurationRequest(ElbError):
    code = "InvalidConfigurationRequest"
    default = "The requested configuration is not valid"


class InvalidLoadBalancerAction(ElbError):
    code = "InvalidLoadBalancerAction"
    default = "The requested action is not valid"


class OperationNotPermitted(ElbError):
    code = "OperationNotPermitted"
    default = "This operation is not allowed"
