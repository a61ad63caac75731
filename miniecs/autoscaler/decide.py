"""The scaling decision: a pure function of (target, policies with their alarm evaluations,
desired and running counts, deployment state, now) that returns a Decision with the new
capacity (or none) and the reason in plain words.

Target tracking: new = clamp(ceil(current x metric / target), min, max), acted on when AlarmHigh
is in ALARM and new > desired (scale-out) or AlarmLow is in ALARM and new < desired (scale-in).
Step scaling: the step whose interval holds (metric - threshold) adjusts the capacity, with
AWS's rounding of percent changes. Rules across policies, as Application Auto Scaling applies
them: scale out if any policy wants out, scale in only if every target-tracking policy with
scale-in enabled wants in, the largest capacity wins. During a scale-out cooldown the capacity
the last scale-out added counts as already there, so only a larger scale-out passes; a
scale-in cooldown blocks scale-in and ends with any scale-out. Scale-in also waits while the
service has a deployment in progress, and suspension stops each direction on its own.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from miniecs.autoscaler.alarms import AlarmEvaluation, Point
from miniecs.autoscaler.model import (
    DEFAULT_COOLDOWN,
    AlarmState,
    PolicyType,
    ScalableTarget,
    ScalingPolicy,
)


class Direction(enum.StrEnum):
    OUT = "out"
    IN = "in"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class PolicyInput:
    policy: ScalingPolicy
    alarms: tuple[AlarmEvaluation, ...]
    """Target tracking: (AlarmHigh, AlarmLow); step scaling: the alarms whose actions name it."""


@dataclass(frozen=True, slots=True)
class Situation:
    target: ScalableTarget
    policies: tuple[PolicyInput, ...]
    desired: int
    running: int
    deployment_in_progress: bool
    now: float


@dataclass(frozen=True, slots=True)
class Proposal:
    """What one policy wants, and why."""

    policy: str
    direction: Direction
    capacity: int | None
    reason: str
    formula: str = ""
    cause: str = ""
    """AWS's Cause for the activity, when the policy wants to scale."""
    cooldown: float = DEFAULT_COOLDOWN
    vetoes_scale_in: bool = False
    """A target-tracking policy with scale-in enabled that does not want in."""


@dataclass(frozen=True, slots=True)
class Decision:
    capacity: int | None
    """The new desired count, or None for no change."""
    direction: Direction
    reason: str
    cause: str = ""
    cooldown: float = 0.0
    """The cooldown the change starts (seconds of control-plane time)."""
    proposals: tuple[Proposal, ...] = ()


def clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, value))


def _fmt(value: float, unit: str | None) -> str:
    text = f"{value:.0f}" if abs(value) >= 10 else f"{value:.3g}"
    return f"{text} %" if unit == "Percent" else text


def _cause(alarm: AlarmEvaluation, policy: ScalingPolicy) -> str:
    return f"monitor alarm {alarm.alarm.name} in state ALARM triggered policy {policy.name}"


def _in_scale_out_cooldown(target: ScalableTarget, now: float) -> bool:
    return now < target.scale_out_until


def _base(s: Situation) -> int:
    """The capacity a scale-out starts from: during a scale-out cooldown, the capacity before
    that scale-out (what it added is counted as part of the next one)."""
    if _in_scale_out_cooldown(s.target, s.now):
        return s.target.scale_out_base
    return s.desired


def _target_tracking(s: Situation, pi: PolicyInput) -> Proposal:
    policy, cfg = pi.policy, pi.policy.configuration
    high, low = pi.alarms
    target = policy.target_value
    unit = high.alarm.unit
    label = "average" if high.alarm.statistic == "Average" else high.alarm.statistic.lower()
    lo, hi = s.target.min_capacity, s.target.max_capacity
    out_cooldown = float(cfg.get("ScaleOutCooldown", DEFAULT_COOLDOWN))
    in_cooldown = float(cfg.get("ScaleInCooldown", DEFAULT_COOLDOWN))
    scale_in_enabled = not cfg.get("DisableScaleIn", False)
    # DisableAlarmActions on a policy's alarm stops what it would do, as on AWS.
    if high.state is AlarmState.ALARM and high.latest is not None and high.alarm.actions_enabled:
        metric = high.latest.value
        base = _base(s)
        # From zero tasks (a metric such as request count can still be non-zero) the
        # formula starts from one.
        raw = math.ceil(round(max(base, 1) * metric / target, 9))
        new = clamp(raw, lo, hi)
        formula = (
            f"ceil({base} x {_fmt(metric, None)} / {_fmt(target, None)}) = {raw}"
            f", within [{lo}, {hi}] = {new}"
        )
        over = f"{label} {_fmt(metric, unit)} > target {_fmt(target, unit)}"
        if new > s.desired:
            return Proposal(
                policy.name,
                Direction.OUT,
                new,
                f"{over} for {high.alarm.datapoints_to_alarm} of "
                f"{high.alarm.evaluation_periods} datapoints: {formula}",
                formula,
                _cause(high, policy),
                out_cooldown,
            )
        if _in_scale_out_cooldown(s.target, s.now):
            left = s.target.scale_out_until - s.now
            why = (
                f"no scale-out: {over}, but the scale-out cooldown ({left:.0f} s left) counts "
                f"the last scale-out ({base} -> {s.desired}) and {formula} is not larger"
            )
        elif new >= hi and s.desired >= hi:
            why = f"no scale-out: {over}, but the service is at MaxCapacity {hi}"
        else:
            why = f"no scale-out: {over}, but {formula} is not above desired {s.desired}"
        return Proposal(
            policy.name, Direction.NONE, None, why, formula, vetoes_scale_in=scale_in_enabled
        )
    if (
        low.state is AlarmState.ALARM
        and low.latest is not None
        and scale_in_enabled
        and low.alarm.actions_enabled
    ):
        metric = low.latest.value
        raw = math.ceil(round(s.desired * metric / target, 9))
        new = clamp(raw, lo, hi)
        formula = (
            f"ceil({s.desired} x {_fmt(metric, None)} / {_fmt(target, None)}) = {raw}"
            f", within [{lo}, {hi}] = {new}"
        )
        under = (
            f"{label} {_fmt(metric, unit)} < {_fmt(low.alarm.threshold, unit)} "
            f"(90 % of target {_fmt(target, unit)}) for {low.alarm.datapoints_to_alarm} of "
            f"{low.alarm.evaluation_periods} datapoints"
        )
        if new < s.desired:
            return Proposal(
                policy.name,
                Direction.IN,
                new,
                f"{under}: {formula}",
                formula,
                _cause(low, policy),
                in_cooldown,
            )
        if raw < s.desired <= lo:
            held = f"already at the minimum capacity {lo}"
        else:
            held = f"removing a task would push the {label} above target"
        return Proposal(
            policy.name,
            Direction.NONE,
            None,
            f"{_no_scale_out(high, target, unit, label)}; no scale-in: {under}, but {formula}; "
            f"{held}",
            formula,
            vetoes_scale_in=True,
        )
    return Proposal(
        policy.name,
        Direction.NONE,
        None,
        _quiet_reason(high, low, target, unit, label, scale_in_enabled),
        vetoes_scale_in=scale_in_enabled,
    )


def _quiet_reason(
    high: AlarmEvaluation,
    low: AlarmEvaluation,
    target: float,
    unit: str | None,
    label: str,
    scale_in_enabled: bool,
) -> str:
    latest: Point | None = high.latest
    if latest is None:
        return (
            f"no data: no {high.alarm.metric_name} datapoint in the last "
            f"{high.alarm.evaluation_periods} periods (AlarmHigh {high.state}); "
            "missing data does nothing"
        )
    words = _no_scale_out(high, target, unit, label)
    if not scale_in_enabled:
        return words + "; scale-in disabled (DisableScaleIn)"
    below = sum(p.breaching for p in low.points)
    words += (
        f"; no scale-in: {below} of {low.alarm.evaluation_periods} datapoints below "
        f"{_fmt(low.alarm.threshold, unit)} (AlarmLow {low.state})"
    )
    return words


def _no_scale_out(high: AlarmEvaluation, target: float, unit: str | None, label: str) -> str:
    latest = high.latest
    assert latest is not None
    value = _fmt(latest.value, unit)
    above = sum(p.breaching for p in high.points)
    if above:
        return (
            f"no scale-out yet: {above} of {high.alarm.evaluation_periods} datapoints above "
            f"target {_fmt(target, unit)} (latest {label} {value}; AlarmHigh {high.state})"
        )
    words = f"no scale-out: {label} {value} <= target {_fmt(target, unit)}"
    busiest = latest.stats.maximum
    if label == "average" and busiest > target and busiest > latest.value:
        words += f", although the busiest task is at {_fmt(busiest, unit)}"
    return words


def percent_change(capacity: int, percent: float, min_magnitude: int | None) -> int:
    """AWS's rounding of PercentChangeInCapacity: above 1 round down, (0, 1] -> 1, [-1, 0) -> -1,
    below -1 round up (towards zero); MinAdjustmentMagnitude raises small changes."""
    change = capacity * percent / 100
    if change > 1:
        step = math.floor(change)
    elif change > 0:
        step = 1
    elif change >= -1:
        step = -1 if change < 0 else 0
    else:
        step = math.ceil(change)
    if min_magnitude and step and abs(step) < min_magnitude:
        step = min_magnitude if step > 0 else -min_magnitude
    return step


def step_for(steps: list[dict[str, Any]], difference: float) -> dict[str, Any] | None:
    """The step adjustment whose interval holds `difference` (metric - threshold): above the
    threshold lower bounds are inclusive, below it upper bounds are."""
    for step in steps:
        lower = step.get("MetricIntervalLowerBound")
        upper = step.get("MetricIntervalUpperBound")
        lo = -math.inf if lower is None else float(lower)
        hi = math.inf if upper is None else float(upper)
        if difference >= 0 and lo <= difference < hi:
            return step
        if difference < 0 and lo < difference <= hi:
            return step
    return None


def _step(s: Situation, pi: PolicyInput) -> Proposal:
    policy, cfg = pi.policy, pi.policy.configuration
    firing = [a for a in pi.alarms if a.state is AlarmState.ALARM and a.latest is not None]
    if not firing:
        states = ", ".join(f"{a.alarm.name} {a.state}" for a in pi.alarms) or "no alarm"
        return Proposal(policy.name, Direction.NONE, None, f"step policy idle ({states})")
    alarm = firing[0]
    assert alarm.latest is not None
    aggregation = cfg.get("MetricAggregationType", "Average")
    value = alarm.latest.stats.statistic(aggregation)
    difference = value - alarm.alarm.threshold
    step = step_for(list(cfg.get("StepAdjustments") or ()), difference)
    if step is None:
        return Proposal(
            policy.name,
            Direction.NONE,
            None,
            f"no step adjustment for metric {_fmt(value, None)} and breach threshold "
            f"{_fmt(alarm.alarm.threshold, None)}",
        )
    adjustment = step["ScalingAdjustment"]
    kind = cfg.get("AdjustmentType", "ChangeInCapacity")
    growing = adjustment > 0 if kind != "ExactCapacity" else adjustment > s.desired
    base = _base(s) if growing else s.desired
    if kind == "ExactCapacity":
        raw = int(adjustment)
    elif kind == "PercentChangeInCapacity":
        raw = base + percent_change(base, adjustment, cfg.get("MinAdjustmentMagnitude"))
    else:
        raw = base + int(adjustment)
    new = clamp(raw, s.target.min_capacity, s.target.max_capacity)
    formula = f"{kind} {adjustment} from {base} = {raw}, within bounds = {new}"
    cooldown = float(cfg.get("Cooldown", DEFAULT_COOLDOWN))
    direction = (
        Direction.OUT if new > s.desired else Direction.IN if new < s.desired else Direction.NONE
    )
    reason = (
        f"alarm {alarm.alarm.name} in ALARM ({aggregation.lower()} {_fmt(value, None)}, "
        f"threshold {_fmt(alarm.alarm.threshold, None)}): {formula}"
    )
    if direction is Direction.NONE:
        bound = ""
        if raw < s.desired <= s.target.min_capacity:
            bound = f"; already at the minimum capacity {s.target.min_capacity}"
        elif raw > s.desired >= s.target.max_capacity:
            bound = f"; already at the maximum capacity {s.target.max_capacity}"
        return Proposal(policy.name, direction, None, "no change: " + reason + bound, formula)
    return Proposal(policy.name, direction, new, reason, formula, _cause(alarm, policy), cooldown)


def propose(s: Situation, pi: PolicyInput) -> Proposal:
    if pi.policy.policy_type is PolicyType.TARGET_TRACKING:
        return _target_tracking(s, pi)
    return _step(s, pi)


def decide(s: Situation) -> Decision:
    """The capacity Application Auto Scaling would set now, or None, with the reason."""
    target = s.target
    proposals = tuple(propose(s, pi) for pi in s.policies)
    if not proposals:
        return Decision(None, Direction.NONE, "no scaling policy", proposals=proposals)
    outs = [p for p in proposals if p.direction is Direction.OUT]
    if outs:
        best = max(outs, key=lambda p: p.capacity or 0)
        if target.dynamic_out_suspended:
            return Decision(
                None,
                Direction.NONE,
                f"no scale-out: dynamic scale-out is suspended (policy {best.policy}: "
                f"{best.reason})",
                proposals=proposals,
            )
        return Decision(
            best.capacity,
            Direction.OUT,
            f"scale-out to {best.capacity} (policy {best.policy}): {best.reason}",
            best.cause,
            best.cooldown,
            proposals,
        )
    ins = [p for p in proposals if p.direction is Direction.IN]
    if not ins:
        return Decision(
            None, Direction.NONE, "; ".join(p.reason for p in proposals), proposals=proposals
        )
    vetoes = [p for p in proposals if p.vetoes_scale_in and p.direction is not Direction.IN]
    best = max(ins, key=lambda p: p.capacity or 0)
    blocked = ""
    if vetoes:
        blocked = "policy " + ", ".join(p.policy for p in vetoes) + " does not want to scale in"
    elif target.dynamic_in_suspended:
        blocked = "dynamic scale-in is suspended"
    elif s.deployment_in_progress:
        blocked = "the service has a deployment in progress (scale-in waits for it)"
    elif s.now < target.scale_in_until:
        blocked = f"scale-in cooldown ({target.scale_in_until - s.now:.0f} s left)"
    if blocked:
        return Decision(
            None,
            Direction.NONE,
            f"no scale-in: {blocked} (policy {best.policy}: {best.reason})",
            proposals=proposals,
        )
    return Decision(
        best.capacity,
        Direction.IN,
        f"scale-in to {best.capacity} (policy {best.policy}): {best.reason}",
        best.cause,
        best.cooldown,
        proposals,
    )
