"""AWS Secrets Manager on the AWS endpoint (AWS JSON 1.1, `X-Amz-Target: secretsmanager.<Op>`):
secrets with versions and staging labels, deletion with a recovery window, tags; errors and
messages as Secrets Manager words them. Storage is `miniecs.secrets.store`."""

from __future__ import annotations

import base64
import random
import string
import uuid
from collections.abc import Callable
from typing import Any

from miniecs.config import ACCOUNT_ID
from miniecs.errors import AwsError, InvalidParameterException, ResourceNotFoundException
from miniecs.secrets.store import CURRENT, Exists, Missing, Secret, SecretStore, SecretVersion

MAX_SECRET_BYTES = 65_536
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "/_+=.@-")


def _request_error(message: str) -> AwsError:
    return AwsError(message, code="InvalidRequestException")


def _not_found() -> AwsError:
    return ResourceNotFoundException("Secrets Manager can't find the specified secret.")


class SecretsManagerApi:
    def __init__(self, store: SecretStore, now: Callable[[], float], region: str) -> None:
        self.store = store
        self.now = now
        self.region = region

    def _arn(self, name: str) -> str:
        suffix = "".join(random.choices(string.ascii_letters + string.digits, k=6))
        return f"arn:aws:secretsmanager:{self.region}:{ACCOUNT_ID}:secret:{name}-{suffix}"

    def _find(self, secret_id: str, allow_deleted: bool = False) -> Secret:
        self.store.purge(self.now())
        secret = self.store.secret(secret_id)
        if secret is None:
            raise _not_found()
        if secret.deleted is not None and not allow_deleted:
            raise _request_error(
                "You can't perform this operation on the secret because it was marked for deletion."
            )
        return secret

    @staticmethod
    def _value(request: dict[str, Any], token: str | None) -> SecretVersion | None:
        text, blob = request.get("SecretString"), request.get("SecretBinary")
        if text is not None and blob is not None:
            raise InvalidParameterException(
                "You can't specify both a binary secret value and a string secret value in the "
                "same secret."
            )
        if text is None and blob is None:
            return None
        raw = base64.b64decode(blob) if isinstance(blob, str) else blob
        size = len(text.encode()) if text is not None else len(raw or b"")
        if size > MAX_SECRET_BYTES:
            raise InvalidParameterException("The secret value exceeds the quota of 65,536 bytes.")
        stages = tuple(request.get("VersionStages") or [CURRENT])
        return SecretVersion(token or str(uuid.uuid4()), stages, text, raw, 0.0)

    @staticmethod
    def _token(request: dict[str, Any]) -> str | None:
        token = request.get("ClientRequestToken")
        if token is not None and not 32 <= len(token) <= 64:
            raise InvalidParameterException(
                "ClientRequestToken must be between 32 and 64 characters."
            )
        return str(token) if token is not None else None

    def create_secret(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["Name"]
        if not 1 <= len(name) <= 512 or not set(name) <= _NAME_CHARS:
            raise InvalidParameterException(
                "Invalid name. Must be a valid name containing alphanumeric characters, or any "
                "of the following: -/_+=.@!"
            )
        existing = self.store.secret(name)
        if existing is not None and existing.deleted is not None:
            raise _request_error(
                "You can't create this secret because a secret with this name is already "
                "scheduled for deletion."
            )
        version = self._value(request, self._token(request))
        now = self.now()
        if version is not None:
            version = SecretVersion(
                version.version_id, (CURRENT,), version.string, version.binary, now
            )
        tags = {t["Key"]: t["Value"] for t in request.get("Tags") or []}
        arn = self._arn(name)
        try:
            self.store.create_secret(
                name, arn, now, request.get("Description"), request.get("KmsKeyId"), tags, version
            )
        except Exists:
            raise AwsError(
                f"The operation failed because the secret {name} already exists.",
                code="ResourceExistsException",
            ) from None
        return {"ARN": arn, "Name": name, "VersionId": version.version_id if version else None}

    def _new_version(self, secret: Secret, request: dict[str, Any]) -> SecretVersion | None:
        version = self._value(request, self._token(request))
        if version is None:
            return None
        now = self.now()
        version = SecretVersion(
            version.version_id, version.stages, version.string, version.binary, now
        )
        try:
            self.store.put_version(secret.name, version, now)
        except Missing:
            raise _not_found() from None
        except Exists:
            raise AwsError(
                "You can't modify an existing version, you can only create new versions.",
                code="ResourceExistsException",
            ) from None
        return version

    def put_secret_value(self, request: dict[str, Any]) -> dict[str, Any]:
        secret = self._find(request["SecretId"])
        if request.get("SecretString") is None and request.get("SecretBinary") is None:
            raise InvalidParameterException("You must provide either SecretString or SecretBinary.")
        version = self._new_version(secret, request)
        assert version is not None
        return {
            "ARN": secret.arn,
            "Name": secret.name,
            "VersionId": version.version_id,
            "VersionStages": list(version.stages),
        }

    def update_secret(self, request: dict[str, Any]) -> dict[str, Any]:
        secret = self._find(request["SecretId"])
        self.store.update_secret(
            secret.name, self.now(), request.get("Description"), request.get("KmsKeyId")
        )
        version = self._new_version(secret, {**request, "VersionStages": None})
        return {
            "ARN": secret.arn,
            "Name": secret.name,
            "VersionId": version.version_id if version else None,
        }

    def get_secret_value(self, request: dict[str, Any]) -> dict[str, Any]:
        secret = self._find(request["SecretId"])
        version_id, stage = request.get("VersionId"), request.get("VersionStage")
        version = secret.version(version_id, stage or (None if version_id else CURRENT))
        if version is None:
            label = (
                f"VersionId: {version_id}" if version_id else f"staging label: {stage or CURRENT}"
            )
            raise ResourceNotFoundException(
                f"Secrets Manager can't find the specified secret value for {label}"
            )
        self.store.touch_secret(secret.name, self.now())
        return {
            "ARN": secret.arn,
            "Name": secret.name,
            "VersionId": version.version_id,
            "SecretString": version.string,
            "SecretBinary": version.binary,
            "VersionStages": list(version.stages),
            "CreatedDate": version.created,
        }

    def _describe(self, secret: Secret, versions_key: str) -> dict[str, Any]:
        return {
            "ARN": secret.arn,
            "Name": secret.name,
            "Description": secret.description,
            "KmsKeyId": secret.kms_key,
            "RotationEnabled": False,
            "LastChangedDate": secret.changed,
            "LastAccessedDate": secret.accessed,
            "DeletedDate": secret.deleted,
            "Tags": [{"Key": k, "Value": v} for k, v in secret.tags.items()],
            versions_key: {v.version_id: list(v.stages) for v in secret.versions if v.stages},
            "CreatedDate": secret.created,
        }

    def describe_secret(self, request: dict[str, Any]) -> dict[str, Any]:
        secret = self._find(request["SecretId"], allow_deleted=True)
        return self._describe(secret, "VersionIdsToStages")

    def list_secrets(self, request: dict[str, Any]) -> dict[str, Any]:
        self.store.purge(self.now())
        secrets = self.store.secrets()
        if not request.get("IncludePlannedDeletion"):
            secrets = [s for s in secrets if s.deleted is None]
        for f in request.get("Filters") or []:
            key, values = f.get("Key"), [str(v) for v in f.get("Values") or []]
            secrets = [s for s in secrets if _filter_matches(s, key, values)]
        if request.get("SortOrder") == "desc":
            secrets.reverse()
        limit = int(request.get("MaxResults") or 100)
        if not 1 <= limit <= 100:
            raise InvalidParameterException("MaxResults must be between 1 and 100.")
        start = 0
        if request.get("NextToken"):
            try:
                start = int(base64.urlsafe_b64decode(request["NextToken"]).decode())
            except ValueError:
                raise AwsError(
                    "The NextToken value is invalid.", code="InvalidNextTokenException"
                ) from None
        page = secrets[start : start + limit]
        more = start + limit < len(secrets)
        return {
            "SecretList": [self._describe(s, "SecretVersionsToStages") for s in page],
            "NextToken": base64.urlsafe_b64encode(str(start + limit).encode()).decode()
            if more
            else None,
        }

    def delete_secret(self, request: dict[str, Any]) -> dict[str, Any]:
        force = bool(request.get("ForceDeleteWithoutRecovery"))
        window = request.get("RecoveryWindowInDays")
        if force and window is not None:
            raise InvalidParameterException(
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."
            )
        days = 30 if window is None else int(window)
        if not force and not 7 <= days <= 30:
            raise InvalidParameterException(
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."
            )
        secret = self._find(request["SecretId"], allow_deleted=True)
        now = self.now()
        if secret.deleted is not None and not force:
            return {"ARN": secret.arn, "Name": secret.name, "DeletionDate": secret.delete_at}
        delete_at = None if force else now + days * 86400
        self.store.schedule_deletion(secret.name, now, delete_at)
        return {"ARN": secret.arn, "Name": secret.name, "DeletionDate": delete_at or now}

    def restore_secret(self, request: dict[str, Any]) -> dict[str, Any]:
        secret = self._find(request["SecretId"], allow_deleted=True)
        self.store.restore(secret.name)
        return {"ARN": secret.arn, "Name": secret.name}

    def tag_resource(self, request: dict[str, Any]) -> dict[str, Any]:
        secret = self._find(request["SecretId"], allow_deleted=True)
        tags = {t["Key"]: t["Value"] for t in request["Tags"]}
        if len(set(secret.tags) | set(tags)) > 50:
            raise _request_error("You have exceeded the maximum number of tags (50).")
        if any(k.lower().startswith("aws:") for k in tags):
            raise InvalidParameterException("Tag keys can't start with 'aws:'.")
        self.store.tag_secret(secret.name, tags)
        return {}

    def untag_resource(self, request: dict[str, Any]) -> dict[str, Any]:
        secret = self._find(request["SecretId"], allow_deleted=True)
        self.store.untag_secret(secret.name, request["TagKeys"])
        return {}


def _filter_matches(secret: Secret, key: str | None, values: list[str]) -> bool:
    """ListSecrets filters: prefix match, case-sensitive, `!` negates (as AWS documents)."""

    def hit(text: str | None, value: str) -> bool:
        negate = value.startswith("!")
        found = text is not None and text.startswith(value.lstrip("!"))
        return found != negate

    fields: dict[str, list[str | None]] = {
        "name": [secret.name],
        "description": [secret.description],
        "tag-key": list(secret.tags),
        "tag-value": list(secret.tags.values()),
    }
    fields["all"] = [t for v in fields.values() for t in v]
    texts = fields.get(key or "", [])
    return any(hit(t, v) for v in values for t in texts) if texts else False
