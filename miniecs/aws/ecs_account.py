"""ECS account settings: PutAccountSetting(Default), DeleteAccountSetting, ListAccountSettings.

A setting is resolved as ECS resolves it: the principal's own value, else the account default
(the root principal's value), else AWS's default. miniecs has one caller, the account's root,
unless a request names another principal. `containerInsights` is the default of new clusters.
"""

from __future__ import annotations

import json
from typing import Any

from miniecs.config import ACCOUNT_ID
from miniecs.errors import InvalidParameterException
from miniecs.store import Store

from .protocols import paginate

ROOT = f"arn:aws:iam::{ACCOUNT_ID}:root"
ON_OFF = ("enabled", "disabled")
SETTINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "serviceLongArnFormat": ("enabled", ON_OFF),
    "taskLongArnFormat": ("enabled", ON_OFF),
    "containerInstanceLongArnFormat": ("enabled", ON_OFF),
    "awsvpcTrunking": ("disabled", ON_OFF),
    "containerInsights": ("disabled", ("enabled", "disabled", "enhanced")),
    "fargateFIPSMode": ("disabled", ON_OFF),
    "tagResourceAuthorization": ("on", ("on", "off")),
    "fargateTaskRetirementWaitPeriod": ("7", ("0", "7", "14")),
    "guardDutyActivate": ("off", ("on", "off")),
    "defaultLogDriverMode": ("non-blocking", ("blocking", "non-blocking")),
    "fargateEventWindows": ("disabled", ON_OFF),
}
"""Each setting's AWS default and accepted values (ECS developer guide, "Account settings")."""
DEFAULT_ONLY = ("fargateTaskRetirementWaitPeriod", "fargateFIPSMode")
"""Settings ECS takes only as the account default (PutAccountSettingDefault)."""
READ_ONLY = ("guardDutyActivate",)
"""Settings ECS changes only through another service (GuardDuty)."""
_META_KEY = "ecs_account_settings"


class AccountSettings:
    """The account-settings half of the ECS API; EcsApi inherits it."""

    store: Store

    def _all(self) -> dict[str, dict[str, str]]:
        raw = self.store.get_meta(_META_KEY)
        return json.loads(raw) if raw else {}

    def _save(self, values: dict[str, dict[str, str]]) -> None:
        self.store.set_meta(_META_KEY, json.dumps(values, sort_keys=True))

    def effective(self, name: str, principal: str = ROOT) -> str:
        values = self._all()
        own = values.get(principal, {}).get(name)
        return own or values.get(ROOT, {}).get(name) or SETTINGS[name][0]

    def _check(self, name: str, value: str) -> None:
        if name in READ_ONLY:
            raise InvalidParameterException(
                f"The {name} setting can only be changed through Amazon GuardDuty."
            )
        if value not in SETTINGS[name][1]:
            raise InvalidParameterException(
                f"The value '{value}' is not valid for {name}. Valid values: "
                f"{', '.join(SETTINGS[name][1])}."
            )

    def _put(self, name: str, value: str, principal: str) -> dict[str, Any]:
        self._check(name, value)
        values = self._all()
        values.setdefault(principal, {})[name] = value
        self._save(values)
        return {
            "setting": {"name": name, "value": value, "principalArn": principal, "type": "user"}
        }

    def put_account_setting(self, req: dict[str, Any]) -> dict[str, Any]:
        principal = req.get("principalArn") or ROOT
        if req["name"] in DEFAULT_ONLY and principal != ROOT:
            raise InvalidParameterException(
                f"The {req['name']} setting can only be set as the account default."
            )
        return self._put(req["name"], req["value"], principal)

    def put_account_setting_default(self, req: dict[str, Any]) -> dict[str, Any]:
        return self._put(req["name"], req["value"], ROOT)

    def delete_account_setting(self, req: dict[str, Any]) -> dict[str, Any]:
        principal = req.get("principalArn") or ROOT
        name = req["name"]
        values = self._all()
        value = values.get(principal, {}).pop(name, None)
        if value is None:
            raise InvalidParameterException(
                f"The {name} setting is not set for the principal {principal}."
            )
        self._save(values)
        return {
            "setting": {"name": name, "value": value, "principalArn": principal, "type": "user"}
        }

    def list_account_settings(self, req: dict[str, Any]) -> dict[str, Any]:
        principal = req.get("principalArn") or ROOT
        own = self._all().get(principal, {})
        names = [req["name"]] if req.get("name") else list(SETTINGS)
        settings = []
        for name in names:
            if req.get("effectiveSettings"):
                value = self.effective(name, principal)
            elif name in own:
                value = own[name]
            else:
                continue
            if req.get("value") and value != req["value"]:
                continue
            settings.append({"name": name, "value": value, "principalArn": principal})
        page, token = paginate(settings, req.get("nextToken"), req.get("maxResults"))
        return {"settings": page, "nextToken": token}
