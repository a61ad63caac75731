"""AWS Systems Manager Parameter Store on the AWS endpoint (AWS JSON 1.1,
`X-Amz-Target: AmazonSSM.<Op>`): String, StringList and SecureString parameters with versions,
paths and filters; errors as SSM words them. SecureString values are stored as given and
returned as an opaque base64 "ciphertext" unless WithDecryption is set, as SSM returns them.
Storage is `miniecs.secrets.store`."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from miniecs.config import ACCOUNT_ID
from miniecs.errors import AwsError
from miniecs.secrets.store import Exists, Parameter, SecretStore

TYPES = ("String", "StringList", "SecureString")
_NAME = re.compile(r"[a-zA-Z0-9_.\-/]+")
MAX_STANDARD_VALUE = 4096
MAX_ADVANCED_VALUE = 8192


def input_error(message: str) -> AwsError:
    return AwsError(message, code="ValidationException")


def _error(code: str, message: str = "") -> AwsError:
    return AwsError(message, code=code)


def check_name(name: str) -> None:
    if len(name) > 2048 or not _NAME.fullmatch(name):
        raise input_error(
            'Parameter name: can\'t be prefixed with "aws" or "ssm" (case-insensitive). If '
            "formed as a path, it can consist of sub-paths divided by slash symbol; each "
            "sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_"
        )
    first = name.lstrip("/").split("/")[0].lower()
    if first.startswith(("aws", "ssm")):
        raise input_error(
            'Parameter name: can\'t be prefixed with "aws" or "ssm" (case-insensitive).'
        )
    if "/" in name and not name.startswith("/"):
        raise input_error("Parameter name must be a fully qualified name.")
    if name.count("/") > 15:
        raise _error(
            "HierarchyLevelLimitExceededException",
            "A hierarchy can have a maximum of 15 levels.",
        )


class SsmApi:
    def __init__(self, store: SecretStore, now: Callable[[], float], region: str) -> None:
        self.store = store
        self.now = now
        self.region = region

    def _arn(self, name: str) -> str:
        return f"arn:aws:ssm:{self.region}:{ACCOUNT_ID}:parameter/{name.lstrip('/')}"

    def _json(self, p: Parameter, decrypt: bool, selector: str | None = None) -> dict[str, Any]:
        value = p.value
        if p.type == "SecureString" and not decrypt:
            value = base64.b64encode(b"miniecs-kms:" + p.value.encode()).decode()
        return {
            "Name": p.name,
            "Type": p.type,
            "Value": value,
            "Version": p.version,
            "Selector": selector,
            "LastModifiedDate": p.modified,
            "ARN": self._arn(p.name),
            "DataType": p.data_type,
        }

    def _metadata(self, p: Parameter) -> dict[str, Any]:
        return {
            "Name": p.name,
            "ARN": self._arn(p.name),
            "Type": p.type,
            "KeyId": p.key_id,
            "LastModifiedDate": p.modified,
            "LastModifiedUser": f"arn:aws:iam::{ACCOUNT_ID}:root",
            "Description": p.description,
            "AllowedPattern": p.allowed_pattern,
            "Version": p.version,
            "Tier": p.tier,
            "Policies": [],
            "DataType": p.data_type,
        }

    def put_parameter(self, request: dict[str, Any]) -> dict[str, Any]:
        name, value = request["Name"], request["Value"]
        check_name(name)
        existing = self.store.parameter(name)
        type_ = request.get("Type") or (existing.type if existing else None)
        if type_ is None:
            raise input_error("A parameter type is required when you create a parameter.")
        if type_ not in TYPES:
            raise _error("UnsupportedParameterType", type_)
        tier = request.get("Tier") or "Standard"
        if tier == "Intelligent-Tiering":
            tier = "Advanced" if len(value.encode()) > MAX_STANDARD_VALUE else "Standard"
        limit = MAX_ADVANCED_VALUE if tier == "Advanced" else MAX_STANDARD_VALUE
        if len(value.encode()) > limit:
            raise input_error(
                "1 validation error detected: Value at 'value' failed to satisfy constraint: "
                f"Member must have length less than or equal to {limit}"
            )
        if existing and request.get("Tags") and request.get("Overwrite"):
            raise input_error(
                "Invalid request: tags and overwrite can't be used together. To create a "
                "parameter with tags, please remove overwrite flag. To update tags for an "
                "existing parameter, please use AddTagsToResource or RemoveTagsFromResource."
            )
        pattern = request.get("AllowedPattern")
        if pattern is None and existing is not None:
            pattern = existing.allowed_pattern
        if pattern:
            try:
                ok = re.fullmatch(pattern, value) is not None
            except re.error:
                raise _error("InvalidAllowedPatternException", "Invalid pattern.") from None
            if not ok:
                raise _error(
                    "ParameterPatternMismatchException",
                    f"Parameter value, cannot be validated against allowedPattern: {pattern}",
                )
        try:
            version = self.store.put_parameter(
                name,
                type_,
                value,
                self.now(),
                bool(request.get("Overwrite")),
                request.get("Description"),
                request.get("AllowedPattern"),
                tier,
                request.get("DataType") or "text",
                request.get("KeyId") or ("alias/aws/ssm" if type_ == "SecureString" else None),
            )
        except Exists:
            raise _error(
                "ParameterAlreadyExists",
                "The parameter already exists. To overwrite this value, set the overwrite "
                "option in the request to true.",
            ) from None
        return {"Version": version, "Tier": tier}

    def _get(self, name: str) -> tuple[Parameter | None, str | None]:
        """A parameter by `name` or `name:version` (and the selector)."""
        base, _, selector = name.partition(":")
        if name.startswith("arn:"):
            base = name.split(":", 5)[5].removeprefix("parameter")
            base = base if base.count("/") > 1 else base.lstrip("/")
            base, _, selector = base.partition(":")
        if selector and not selector.isdigit():
            return None, selector  # labels are not kept
        version = int(selector) if selector else None
        return self.store.parameter(base, version), (f":{selector}" if selector else None)

    def get_parameter(self, request: dict[str, Any]) -> dict[str, Any]:
        param, selector = self._get(request["Name"])
        if param is None:
            if selector:
                raise _error(
                    "ParameterVersionNotFound",
                    f"Systems Manager could not find version {selector.lstrip(':')} of "
                    f"{request['Name'].partition(':')[0]}. Verify the version and try again.",
                )
            raise _error("ParameterNotFound")
        return {"Parameter": self._json(param, bool(request.get("WithDecryption")), selector)}

    def get_parameters(self, request: dict[str, Any]) -> dict[str, Any]:
        names = request["Names"]
        if len(names) > 10:
            raise input_error(
                "1 validation error detected: Value at 'names' failed to satisfy constraint: "
                "Member must have length less than or equal to 10"
            )
        found, invalid = [], []
        for name in dict.fromkeys(names):
            param, selector = self._get(name)
            if param is None:
                invalid.append(name)
            else:
                found.append(self._json(param, bool(request.get("WithDecryption")), selector))
        return {"Parameters": found, "InvalidParameters": invalid}

    def get_parameters_by_path(self, request: dict[str, Any]) -> dict[str, Any]:
        path = request["Path"]
        if not path.startswith("/"):
            raise input_error("The parameter doesn't meet the parameter name requirements. ")
        prefix = path if path.endswith("/") else f"{path}/"
        recursive = bool(request.get("Recursive"))
        params = [
            p
            for p in self.store.parameters()
            if (path == "/" or p.name.startswith(prefix))
            and (recursive or "/" not in p.name[len(prefix) if path != "/" else 1 :])
        ]
        params = _apply_filters(params, request.get("ParameterFilters") or [])
        page, token = _page(params, request.get("NextToken"), request.get("MaxResults"), 10)
        return {
            "Parameters": [self._json(p, bool(request.get("WithDecryption"))) for p in page],
            "NextToken": token,
        }

    def delete_parameter(self, request: dict[str, Any]) -> dict[str, Any]:
        if not self.store.delete_parameter(request["Name"]):
            raise _error("ParameterNotFound")
        return {}

    def delete_parameters(self, request: dict[str, Any]) -> dict[str, Any]:
        deleted: list[str] = []
        invalid: list[str] = []
        for name in request["Names"]:
            (deleted if self.store.delete_parameter(name) else invalid).append(name)
        return {"DeletedParameters": deleted, "InvalidParameters": invalid}

    def describe_parameters(self, request: dict[str, Any]) -> dict[str, Any]:
        params = self.store.parameters()
        if request.get("Filters") and request.get("ParameterFilters"):
            raise input_error("You can use either Filters or ParameterFilters in a single request.")
        filters = [
            {"Key": f["Key"], "Option": "Equals", "Values": f["Values"]}
            for f in request.get("Filters") or []
        ]
        params = _apply_filters(params, filters + list(request.get("ParameterFilters") or []))
        page, token = _page(params, request.get("NextToken"), request.get("MaxResults"), 50)
        return {"Parameters": [self._metadata(p) for p in page], "NextToken": token}


def _apply_filters(params: list[Parameter], filters: list[dict[str, Any]]) -> list[Parameter]:
    for f in filters:
        key, option, values = f["Key"], f.get("Option") or "Equals", f.get("Values") or []
        if key == "Name":
            name_values = list(values)
            if option == "BeginsWith":
                params = [p for p in params if any(p.name.startswith(v) for v in name_values)]
            elif option == "Contains":
                params = [p for p in params if any(v in p.name for v in name_values)]
            elif option == "Equals":
                params = [p for p in params if p.name in name_values]
            else:
                raise _error("InvalidFilterOption", f"The filter option {option} is not valid.")
        elif key == "Type":
            params = [p for p in params if p.type in values]
        elif key == "Tier":
            params = [p for p in params if p.tier in values]
        elif key == "DataType":
            params = [p for p in params if p.data_type in values]
        elif key == "Path":
            recursive = option == "Recursive"
            prefixes = [v.rstrip("/") + "/" for v in values]
            params = [
                p
                for p in params
                if any(
                    p.name.startswith(pre) and (recursive or "/" not in p.name[len(pre) :])
                    for pre in prefixes
                )
            ]
        else:
            raise _error("InvalidFilterKey", f"The filter key {key} is not supported by miniecs.")
    return params


def _page(
    items: list[Parameter], token: str | None, limit: int | None, cap: int
) -> tuple[list[Parameter], str | None]:
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token).decode())
        except ValueError:
            raise _error("InvalidNextToken", "The specified token isn't valid.") from None
    size = cap if limit is None else int(limit)
    if not 1 <= size <= cap:
        raise input_error(
            "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: "
            f"Member must have value less than or equal to {cap}"
        )
    page = items[start : start + size]
    more = start + size < len(items)
    return page, base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else None
