"""Seeding Secrets Manager and SSM Parameter Store from a JSON file (`--secrets-file`), for CI:

    {"secrets": {"prod/db": {"password": "s3cret"}, "api-key": "abc"},
     "parameters": {"/app/url": "https://example.test",
                    "/app/token": {"Value": "t0ken", "Type": "SecureString"}}}

A secret's value is stored as given (an object as its JSON text, for `:json-key:` lookups); a
parameter is a String unless it says otherwise. Seeding is idempotent: an unchanged value adds
no version, a changed one adds a new version as PutSecretValue / PutParameter would.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from pathlib import Path
from typing import Any

from miniecs.config import ACCOUNT_ID
from miniecs.secrets.store import CURRENT, SecretStore, SecretVersion


class SeedError(ValueError):
    pass


def seed_secrets(store: SecretStore, path: Path, now: float, region: str) -> tuple[int, int]:
    """Apply the file; returns (secrets, parameters) written. Raises SeedError."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SeedError(f"cannot read secrets file {path}: {exc}") from None
    if not isinstance(doc, dict) or not set(doc) <= {"secrets", "parameters"}:
        raise SeedError("a secrets file holds an object with 'secrets' and 'parameters'")
    written = [0, 0]
    for name, raw in (doc.get("secrets") or {}).items():
        text = raw if isinstance(raw, str) else json.dumps(raw)
        existing = store.secret(name)
        current = existing.version(None, CURRENT) if existing else None
        if current is not None and current.string == text:
            continue
        version = SecretVersion(str(uuid.uuid4()), (CURRENT,), text, None, now)
        if existing is None:
            suffix = "".join(random.choices(string.ascii_letters + string.digits, k=6))
            arn = f"arn:aws:secretsmanager:{region}:{ACCOUNT_ID}:secret:{name}-{suffix}"
            store.create_secret(name, arn, now, None, None, {}, version)
        else:
            store.put_version(existing.name, version, now)
        written[0] += 1
    for name, raw in (doc.get("parameters") or {}).items():
        spec: dict[str, Any] = raw if isinstance(raw, dict) else {"Value": str(raw)}
        value, type_ = str(spec.get("Value", "")), str(spec.get("Type") or "String")
        if type_ not in ("String", "StringList", "SecureString") or not value:
            raise SeedError(
                f"parameter {name}: needs a Value and a Type of String, StringList or SecureString"
            )
        existing_param = store.parameter(name)
        if existing_param is not None and (existing_param.value, existing_param.type) == (
            value,
            type_,
        ):
            continue
        store.put_parameter(
            name,
            type_,
            value,
            now,
            True,
            spec.get("Description"),
            None,
            "Standard",
            "text",
            "alias/aws/ssm" if type_ == "SecureString" else None,
        )
        written[1] += 1
    return written[0], written[1]
