"""`miniecs why <cluster>/<service>`: the autoscaler's recent decisions in plain words, read
from a running server's `GET /_miniecs/scaling/<cluster>/<service>`."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from typing import Any


class WhyError(Exception):
    """The server could not be read, or the service has no scalable target."""


def fetch(endpoint_url: str, cluster: str, service: str) -> list[dict[str, Any]]:
    url = f"{endpoint_url.rstrip('/')}/_miniecs/scaling/{cluster}/{service}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            history: list[dict[str, Any]] = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise WhyError(
                f"no scalable target registered for service/{cluster}/{service} "
                "(RegisterScalableTarget first)"
            ) from None
        raise WhyError(f"miniecs at {endpoint_url} answered {exc.code} {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise WhyError(f"cannot reach miniecs at {endpoint_url}: {exc}") from None
    return history


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S")


def _alarm_line(alarm: dict[str, Any]) -> str:
    kind = "AlarmHigh" if "-AlarmHigh-" in alarm["name"] else "AlarmLow"
    if "-Alarm" not in alarm["name"]:
        kind = alarm["name"]
    sign = ">" if alarm["comparison"].startswith("Greater") else "<"
    values = ", ".join(f"{p['value']:.1f}" for p in alarm["datapoints"][-5:]) or "no data"
    return f"{kind} {alarm['state']} ({sign} {alarm['threshold']:g}): {values}"


def render(history: list[dict[str, Any]], limit: int = 10) -> list[str]:
    """The last `limit` evaluations, oldest first, as lines of text."""
    lines: list[str] = []
    for entry in history[-limit:]:
        decision = entry["decision"]
        if "scheduledAction" in entry:
            lines.append(f"{_clock(entry['at'])}  {decision['reason']}")
            continue
        outcome = f"-> {decision['capacity']} (applied)" if entry["applied"] else "no change"
        lines.append(
            f"{_clock(entry['at'])}  desired {entry['desiredCount']}, running "
            f"{entry['runningCount']}, bounds [{entry['minCapacity']}, {entry['maxCapacity']}]"
            f"  {outcome}"
        )
        lines.append(f"  {decision['reason']}")
        for policy in entry["policies"]:
            alarms = "; ".join(_alarm_line(a) for a in policy["alarms"])
            lines.append(f"  {policy['policyName']}: {alarms}")
        out_left = entry["scaleOutCooldownRemaining"]
        in_left = entry["scaleInCooldownRemaining"]
        if out_left or in_left:
            lines.append(f"  cooldowns left: scale-out {out_left:.0f} s, scale-in {in_left:.0f} s")
    return lines or ["no evaluation yet: alarms are evaluated at each metric period end"]


def run(endpoint_url: str, resource: str, output: str, limit: int) -> str:
    cluster, _, service = resource.removeprefix("service/").partition("/")
    if not cluster or not service or "/" in service:
        raise WhyError(f"expected <cluster>/<service>, not {resource!r}")
    history = fetch(endpoint_url, cluster, service)
    if output == "json":
        return json.dumps(history[-limit:], indent=2)
    return "\n".join(render(history, limit))
