"""`secrets[].valueFrom` of a container definition resolved as the ECS agent resolves them when
a task starts, with ECS's stopped-reason wording when one cannot be.

A value is a Secrets Manager ARN (full, or without the random suffix), optionally followed by
`:json-key:version-stage:version-id`; an SSM parameter ARN; or an SSM parameter name (a name
that is no parameter is also looked up as a secret name, for convenience). miniecs keeps one
store for every region and account: an ARN of another region or account finds the secret or
parameter of that name.
"""

from __future__ import annotations

import json
import re
from typing import Any

from miniecs.secrets.store import CURRENT, SecretStore

PREFIX = (
    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
    "retrieval failed: "
)


class SecretsUnavailable(Exception):
    """A task cannot start: `reason` is ECS's stoppedReason (no secret value in it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _asm_error(arn: str, detail: str) -> SecretsUnavailable:
    return SecretsUnavailable(
        f"{PREFIX}unable to retrieve secret from asm: service call has been retried 1 time(s): "
        f"failed to fetch secret {arn} from secrets manager: {detail}"
    )


def _secret_value(store: SecretStore, value_from: str) -> str:
    parts = value_from.split(":")
    if value_from.startswith("arn:"):
        secret_id = ":".join(parts[:7])
        json_key, stage, version_id = [*parts[7:10], "", "", ""][:3]
    else:
        secret_id, json_key, stage, version_id = value_from, "", "", ""
    secret = store.secret(secret_id)
    if secret is None and secret_id.startswith("arn:"):
        # one store for every region and account: find the secret by its name
        name = parts[6]
        secret = store.secret(name) or store.secret(re.sub(r"-[A-Za-z0-9]{6}$", "", name))
    if secret is None:
        raise _asm_error(
            secret_id, "ResourceNotFoundException: Secrets Manager can't find the specified secret."
        )
    if secret.deleted is not None:
        raise _asm_error(
            secret_id,
            "InvalidRequestException: You can't perform this operation on the secret because "
            "it was marked for deletion.",
        )
    version = secret.version(version_id or None, stage or (None if version_id else CURRENT))
    if version is None or version.string is None:
        label = f"VersionId: {version_id}" if version_id else f"staging label: {stage or CURRENT}"
        raise _asm_error(
            secret_id,
            "ResourceNotFoundException: Secrets Manager can't find the specified secret value "
            f"for {label}",
        )
    if not json_key:
        return version.string
    try:
        document = json.loads(version.string)
    except ValueError:
        document = None
    if not isinstance(document, dict) or json_key not in document:
        raise _asm_error(
            secret_id, f"retrieved secret from Secrets Manager did not contain json key {json_key}"
        )
    value = document[json_key]
    return value if isinstance(value, str) else json.dumps(value)


def _parameter_name(value_from: str) -> str:
    if value_from.startswith("arn:"):
        name = value_from.split(":", 5)[5].removeprefix("parameter")
        return name if name.count("/") > 1 else name.lstrip("/")
    return value_from


def resolve(secrets: list[dict[str, Any]], store: SecretStore) -> dict[str, str]:
    """Environment variables of a container's `secrets`; raises SecretsUnavailable."""
    env: dict[str, str] = {}
    missing: list[str] = []
    for item in secrets:
        value_from = str(item.get("valueFrom") or "")
        if value_from.startswith("arn:") and ":secretsmanager:" in value_from:
            env[item["name"]] = _secret_value(store, value_from)
            continue
        name = _parameter_name(value_from)
        param = store.parameter(name)
        if param is None and value_from.startswith("arn:") and not name.startswith("/"):
            param = store.parameter(f"/{name}")
        if param is not None:
            env[item["name"]] = param.value
        elif not value_from.startswith("arn:") and store.secret(value_from) is not None:
            env[item["name"]] = _secret_value(store, value_from)
        else:
            missing.append(name)
    if missing:
        raise SecretsUnavailable(
            f"{PREFIX}unable to retrieve secrets from ssm: service call has been retried 1 "
            f"time(s): invalid ssm parameters: {' '.join(missing)}"
        )
    return env
