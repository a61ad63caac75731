"""The ELBv2 API (query protocol, 2015-12-01) for Application Load Balancers: thin handlers that
check a request against ELBv2's rules, write the desired state to the ALB store, and wake the
ALB controller, which runs one data-plane container per load balancer.

Only `Type=application`, HTTP listeners and `TargetType=ip` target groups are served; anything
else is refused with the error code AWS uses, and a refused request changes nothing.
"""

from __future__ import annotations

import secrets
from typing import Any

from miniecs.alb import validate
from miniecs.alb.config import (
    DEFAULT_ATTRIBUTES,
    LOAD_BALANCER_ATTRIBUTES,
    attributes,
    forwarded_target_groups,
)
from miniecs.alb.controller import AlbController
from miniecs.alb.errors import (
    DuplicateListener,
    DuplicateLoadBalancerName,
    DuplicateTargetGroupName,
    InvalidConfigurationRequest,
    ListenerNotFound,
    LoadBalancerNotFound,
    OperationNotPermitted,
    PriorityInUse,
    ResourceInUse,
    RuleNotFound,
    TargetGroupNotFound,
    TooManyTags,
    ValidationError,
)
from miniecs.alb.store import (
    LISTENER,
    LOAD_BALANCER,
    RULE,
    TARGET_GROUP,
    AlbStore,
    Resource,
)
from miniecs.clock import Clock
from miniecs.config import ACCOUNT_ID

HOSTED_ZONE = "Z35SXDOTRQ7X7K"
VPC_ID = "vpc-miniecs"
MAX_TAGS = 50


def _id() -> str:
    return secrets.token_hex(8)


class Elbv2Api:
    def __init__(
        self, store: AlbStore, controller: AlbController, clock: Clock, region: str
    ) -> None:
        self.store = store
        self.controller = controller
        self.clock = clock
        self.region = region
        self.prefix = f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT_ID}"

    # lookups -----------------------------------------------------------------------------------
    def _lb(self, arn: str) -> Resource:
        lb = self.store.get(arn, LOAD_BALANCER)
        if lb is None:
            raise LoadBalancerNotFound(f"Load balancer '{arn}' not found")
        return lb

    def _tg(self, arn: str) -> Resource:
        tg = self.store.get(arn, TARGET_GROUP)
        if tg is None:
            raise TargetGroupNotFound(f"Target groups '{arn}' not found")
        return tg

    def _listener(self, arn: str) -> Resource:
        listener = self.store.get(arn, LISTENER)
        if listener is None:
            raise ListenerNotFound(f"Listener '{arn}' not found")
        return listener

    def _rule(self, arn: str) -> Resource:
        rule = self.store.get(arn, RULE)
        if rule is None:
            raise RuleNotFound(f"Rule '{arn}' not found")
        return rule

    def _tg_exists(self, arn: str) -> bool:
        return self.store.get(arn, TARGET_GROUP) is not None

    def _lb_view(self, lb: Resource) -> dict[str, Any]:
        code, reason = self.controller.load_balancer_state(lb.arn)
        state = {"Code": code} if reason is None else {"Code": code, "Reason": reason}
        return {**lb.data, "State": state}

    def _tg_view(self, tg: Resource) -> dict[str, Any]:
        return {**tg.data, "LoadBalancerArns": self.controller.load_balancers_of(tg.arn)}

    def _check_tg_owner(self, lb_arn: str, actions: list[dict[str, Any]]) -> None:
        """A target group serves one load balancer (TargetGroupAssociationLimit on AWS)."""
        for tg_arn in forwarded_target_groups(actions):
            owners = set(self.controller.load_balancers_of(tg_arn)) - {lb_arn}
            if owners:
                raise InvalidConfigurationRequest(
                    f"The following target groups cannot be associated with more than one "
                    f"load balancer: {tg_arn}"
                )

    # load balancers ----------------------------------------------------------------------------
    def create_load_balancer(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["Name"]
        validate.resource_name("Load balancer", name)
        kind = req.get("Type", "application")
        if kind != "application":
            raise ValidationError(
                f"Load balancer type '{kind}' is not supported by miniecs (only 'application')"
            )
        tags = self._tags_in(req.get("Tags"))
        scheme = req.get("Scheme", "internet-facing")
        subnets = [m["SubnetId"] for m in req.get("SubnetMappings") or ()] or list(
            req.get("Subnets") or ()
        )
        settings = {
            "Scheme": scheme,
            "Type": "application",
            "SecurityGroups": list(req.get("SecurityGroups") or []),
            "IpAddressType": validate.ip_address_type(req.get("IpAddressType", "ipv4"), scheme),
            # One subnet per Availability Zone, as ELB requires; miniecs names the zones in
            # the order the subnets are given.
            "AvailabilityZones": [
                {
                    "ZoneName": f"{self.region}{chr(ord('a') + i)}",
                    "SubnetId": subnet,
                    "LoadBalancerAddresses": [],
                }
                for i, subnet in enumerate(subnets[:26])
            ],
        }
        existing = self.store.by_name(LOAD_BALANCER, name)
        if existing is not None:
            # CreateLoadBalancer is idempotent: the same settings answer the existing one.
            if {k: existing.data.get(k) for k in settings} == settings:
                return {"LoadBalancers": [self._lb_view(existing)]}
            raise DuplicateLoadBalancerName()
        lb_id = _id()
        arn = f"{self.prefix}:loadbalancer/app/{name}/{lb_id}"
        now = self.clock.now()
        data = {
            "LoadBalancerArn": arn,
            "DNSName": self.controller.settings.dns_name,
            "CanonicalHostedZoneId": HOSTED_ZONE,
            "CreatedTime": now,
            "LoadBalancerName": name,
            "VpcId": VPC_ID,
            **settings,
        }
        with self.store.transaction():
            self.store.put(Resource(arn, LOAD_BALANCER, None, name, data, {}, now))
            self.store.set_tags(arn, tags)
        self.controller.notify()
        return {"LoadBalancers": [self._lb_view(self._lb(arn))]}

    def describe_load_balancers(self, req: dict[str, Any]) -> dict[str, Any]:
        arns, names = req.get("LoadBalancerArns"), req.get("Names")
        if arns:
            lbs = [self._lb(a) for a in arns]
        elif names:
            lbs = []
            for n in names:
                lb = self.store.by_name(LOAD_BALANCER, n)
                if lb is None:
                    raise LoadBalancerNotFound(f"Load balancers '[{n}]' not found")
                lbs.append(lb)
        else:
            lbs = self.store.all(LOAD_BALANCER)
        return {"LoadBalancers": [self._lb_view(lb) for lb in lbs]}

    def set_ip_address_type(self, req: dict[str, Any]) -> dict[str, Any]:
        lb = self._lb(req["LoadBalancerArn"])
        value = validate.ip_address_type(req["IpAddressType"], lb.data["Scheme"])
        data = {**lb.data, "IpAddressType": value}
        self.store.put(Resource(lb.arn, LOAD_BALANCER, None, lb.name, data, lb.extra, lb.created))
        return {"IpAddressType": value}

    def describe_load_balancer_attributes(self, req: dict[str, Any]) -> dict[str, Any]:
        lb = self._lb(req["LoadBalancerArn"])
        return {"Attributes": [{"Key": k, "Value": v} for k, v in attributes(lb).items()]}

    def modify_load_balancer_attributes(self, req: dict[str, Any]) -> dict[str, Any]:
        lb = self._lb(req["LoadBalancerArn"])
        changes = {a["Key"]: a.get("Value", "") for a in req["Attributes"]}
        validate.load_balancer_attributes(changes, LOAD_BALANCER_ATTRIBUTES)
        merged = {**attributes(lb), **changes}
        own = {k: v for k, v in merged.items() if LOAD_BALANCER_ATTRIBUTES.get(k) != v}
        extra = {**lb.extra, "attributes": own}
        self.store.put(Resource(lb.arn, LOAD_BALANCER, None, lb.name, lb.data, extra, lb.created))
        self.controller.notify()
        return {"Attributes": [{"Key": k, "Value": v} for k, v in merged.items()]}

    def delete_load_balancer(self, req: dict[str, Any]) -> dict[str, Any]:
        lb = self.store.get(req["LoadBalancerArn"], LOAD_BALANCER)
        if lb is None:
            return {}
        if attributes(lb)["deletion_protection.enabled"] == "true":
            raise OperationNotPermitted(
                f"Load balancer '{lb.arn}' cannot be deleted because deletion protection is enabled"
            )
        listeners = self.store.all(LISTENER, lb.arn)
        rules = [r.arn for listener in listeners for r in self.store.all(RULE, listener.arn)]
        self.store.delete(*rules, *(listener.arn for listener in listeners), lb.arn)
        self.controller.notify()
        return {}

    # target groups -----------------------------------------------------------------------------
    def create_target_group(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["Name"]
        validate.resource_name("Target group", name)
        target_type = req.get("TargetType", "instance")
        if target_type != "ip":
            raise ValidationError(
                f"Target type '{target_type}' is not supported by miniecs: use TargetType 'ip' "
                "(Fargate tasks register their private IP)"
            )
        protocol = req.get("Protocol")
        if protocol != "HTTP":
            raise ValidationError(
                "A target group with target type 'ip' needs Protocol 'HTTP' in miniecs"
            )
        if "Port" not in req:
            raise ValidationError("A port must be specified")
        data = {
            "TargetGroupName": name,
            "Protocol": "HTTP",
            "Port": req["Port"],
            "VpcId": req.get("VpcId", VPC_ID),
            "HealthCheckProtocol": req.get("HealthCheckProtocol", "HTTP"),
            "HealthCheckPort": req.get("HealthCheckPort", "traffic-port"),
            "HealthCheckEnabled": req.get("HealthCheckEnabled", True),
            "HealthCheckIntervalSeconds": req.get("HealthCheckIntervalSeconds", 30),
            "HealthCheckTimeoutSeconds": req.get("HealthCheckTimeoutSeconds", 5),
            "HealthyThresholdCount": req.get("HealthyThresholdCount", 5),
            "UnhealthyThresholdCount": req.get("UnhealthyThresholdCount", 2),
            "HealthCheckPath": req.get("HealthCheckPath", "/"),
            "Matcher": {"HttpCode": (req.get("Matcher") or {}).get("HttpCode", "200")},
            "TargetType": "ip",
            "ProtocolVersion": req.get("ProtocolVersion", "HTTP1"),
            "IpAddressType": validate.target_ip_address_type(req.get("IpAddressType", "ipv4")),
        }
        validate.health_check(data)
        tags = self._tags_in(req.get("Tags"))
        existing = self.store.by_name(TARGET_GROUP, name)
        if existing is not None:
            same = {k: v for k, v in existing.data.items() if k != "TargetGroupArn"}
            if same == data:
                return {"TargetGroups": [self._tg_view(existing)]}
            raise DuplicateTargetGroupName()
        arn = f"{self.prefix}:targetgroup/{name}/{_id()}"
        data = {"TargetGroupArn": arn, **data}
        with self.store.transaction():
            self.store.put(Resource(arn, TARGET_GROUP, None, name, data, {}, self.clock.now()))
            self.store.set_tags(arn, tags)
        return {"TargetGroups": [self._tg_view(self._tg(arn))]}

    def describe_target_groups(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("TargetGroupArns"):
            tgs = [self._tg(a) for a in req["TargetGroupArns"]]
        elif req.get("Names"):
            tgs = []
            for n in req["Names"]:
                tg = self.store.by_name(TARGET_GROUP, n)
                if tg is None:
                    raise TargetGroupNotFound(f"Target groups '[{n}]' not found")
                tgs.append(tg)
        else:
            tgs = self.store.all(TARGET_GROUP)
        if req.get("LoadBalancerArn"):
            self._lb(req["LoadBalancerArn"])
            tgs = [
                tg
                for tg in tgs
                if req["LoadBalancerArn"] in self.controller.load_balancers_of(tg.arn)
            ]
        return {"TargetGroups": [self._tg_view(tg) for tg in tgs]}

    def modify_target_group(self, req: dict[str, Any]) -> dict[str, Any]:
        tg = self._tg(req["TargetGroupArn"])
        data = dict(tg.data)
        for key in (
            "HealthCheckProtocol",
            "HealthCheckPort",
            "HealthCheckPath",
            "HealthCheckEnabled",
            "HealthCheckIntervalSeconds",
            "HealthCheckTimeoutSeconds",
            "HealthyThresholdCount",
            "UnhealthyThresholdCount",
        ):
            if key in req:
                data[key] = req[key]
        if req.get("Matcher"):
            data["Matcher"] = {"HttpCode": req["Matcher"].get("HttpCode", "200")}
        validate.health_check(data)
        self.store.put(Resource(tg.arn, TARGET_GROUP, None, tg.name, data, tg.extra, tg.created))
        self.controller.notify()
        return {"TargetGroups": [self._tg_view(self._tg(tg.arn))]}

    def describe_target_group_attributes(self, req: dict[str, Any]) -> dict[str, Any]:
        tg = self._tg(req["TargetGroupArn"])
        return {"Attributes": [{"Key": k, "Value": v} for k, v in attributes(tg).items()]}

    def modify_target_group_attributes(self, req: dict[str, Any]) -> dict[str, Any]:
        tg = self._tg(req["TargetGroupArn"])
        changes = {a["Key"]: a.get("Value", "") for a in req["Attributes"]}
        merged = {**attributes(tg), **changes}
        validate.target_group_attributes(changes, DEFAULT_ATTRIBUTES)
        validate.target_group_attributes(merged, DEFAULT_ATTRIBUTES)
        own = {k: v for k, v in merged.items() if DEFAULT_ATTRIBUTES.get(k) != v}
        extra = {**tg.extra, "attributes": own}
        self.store.put(Resource(tg.arn, TARGET_GROUP, None, tg.name, tg.data, extra, tg.created))
        self.controller.notify()
        return {"Attributes": [{"Key": k, "Value": v} for k, v in merged.items()]}

    def delete_target_group(self, req: dict[str, Any]) -> dict[str, Any]:
        tg = self._tg(req["TargetGroupArn"])
        if self.controller.load_balancers_of(tg.arn):
            raise ResourceInUse(
                f"Target group '{tg.arn}' is currently in use by a listener or a rule"
            )
        self.store.delete(tg.arn)
        self.controller.notify()
        return {}

    # targets -----------------------------------------------------------------------------------
    def register_targets(self, req: dict[str, Any]) -> dict[str, Any]:
        self.controller.register_targets(
            req["TargetGroupArn"], [(t["Id"], t.get("Port")) for t in req["Targets"]]
        )
        return {}

    def deregister_targets(self, req: dict[str, Any]) -> dict[str, Any]:
        self.controller.deregister_targets(
            req["TargetGroupArn"], [(t["Id"], t.get("Port")) for t in req["Targets"]]
        )
        return {}

    def describe_target_health(self, req: dict[str, Any]) -> dict[str, Any]:
        tg = self._tg(req["TargetGroupArn"])
        if req.get("Targets"):
            keys = [(t["Id"], int(t.get("Port") or tg.data["Port"])) for t in req["Targets"]]
        else:
            keys = [(r.ip, r.port) for r in self.store.targets(tg.arn)]
        out = []
        for ip, port in keys:
            health = self.controller.target_health(tg.arn, ip, port)
            if health is None:
                state: dict[str, Any] = {
                    "State": "unused",
                    "Reason": "Target.NotRegistered",
                    "Description": "Target is not registered to the target group",
                }
            else:
                state = {"State": health.state}
                if health.reason:
                    state["Reason"] = health.reason
                if health.description:
                    state["Description"] = health.description
            hc_port = tg.data["HealthCheckPort"]
            out.append(
                {
                    "Target": {"Id": ip, "Port": port},
                    "HealthCheckPort": str(port) if hc_port == "traffic-port" else hc_port,
                    "TargetHealth": state,
                }
            )
        return {"TargetHealthDescriptions": out}

    # listeners ---------------------------------------------------------------------------------
    def _check_port(self, lb: Resource, port: int, listener_arn: str | None = None) -> None:
        for other in self.store.all(LISTENER):
            if other.arn == listener_arn or int(other.data["Port"]) != port:
                continue
            if other.parent == lb.arn:
                raise DuplicateListener()
            raise InvalidConfigurationRequest(
                f"Port {port} is already used by a listener of load balancer "
                f"'{other.parent}' on this host"
            )
        if not self.controller.host_port_free(port):
            raise InvalidConfigurationRequest(
                f"Port {port} is already in use on this host "
                f"({self.controller.settings.bind}:{port}); choose another listener port"
            )

    def create_listener(self, req: dict[str, Any]) -> dict[str, Any]:
        lb = self._lb(req["LoadBalancerArn"])
        protocol = req.get("Protocol", "HTTP")
        if protocol != "HTTP":
            raise ValidationError(
                f"Listener protocol '{protocol}' is not supported by miniecs (only 'HTTP')"
            )
        port = req.get("Port")
        if port is None:
            raise ValidationError("A listener port must be specified")
        actions = validate.actions(req["DefaultActions"], self._tg_exists)
        self._check_tg_owner(lb.arn, actions)
        tags = self._tags_in(req.get("Tags"))
        self._check_port(lb, port)
        lb_path = lb.arn.split(":loadbalancer/", 1)[1]
        arn = f"{self.prefix}:listener/{lb_path}/{_id()}"
        now = self.clock.now()
        data = {
            "ListenerArn": arn,
            "LoadBalancerArn": lb.arn,
            "Port": port,
            "Protocol": "HTTP",
            "DefaultActions": actions,
        }
        default_rule = self._default_rule(arn, actions, now)
        with self.store.transaction():
            self.store.put(Resource(arn, LISTENER, lb.arn, None, data, {}, now))
            self.store.put(default_rule)
            self.store.set_tags(arn, tags)
        self.controller.notify()
        return {"Listeners": [data]}

    def _default_rule(
        self, listener_arn: str, actions: list[dict[str, Any]], now: float
    ) -> Resource:
        existing = [r for r in self.store.all(RULE, listener_arn) if r.data["IsDefault"]]
        arn = existing[0].arn if existing else self._rule_arn(listener_arn)
        data = {
            "RuleArn": arn,
            "Priority": "default",
            "Conditions": [],
            "Actions": actions,
            "IsDefault": True,
        }
        return Resource(
            arn, RULE, listener_arn, None, data, {}, existing[0].created if existing else now
        )

    def _rule_arn(self, listener_arn: str) -> str:
        path = listener_arn.split(":listener/", 1)[1]
        return f"{self.prefix}:listener-rule/{path}/{_id()}"

    def describe_listeners(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("ListenerArns"):
            listeners = [self._listener(a) for a in req["ListenerArns"]]
        elif req.get("LoadBalancerArn"):
            listeners = self.store.all(LISTENER, self._lb(req["LoadBalancerArn"]).arn)
        else:
            raise ValidationError("You must specify either listener ARNs or a load balancer ARN")
        return {"Listeners": [listener.data for listener in listeners]}

    def modify_listener(self, req: dict[str, Any]) -> dict[str, Any]:
        listener = self._listener(req["ListenerArn"])
        lb = self._lb(listener.parent or "")
        data = dict(listener.data)
        if req.get("Protocol") not in (None, "HTTP"):
            raise ValidationError(
                f"Listener protocol '{req['Protocol']}' is not supported by miniecs (only 'HTTP')"
            )
        if "Port" in req and req["Port"] != data["Port"]:
            self._check_port(lb, req["Port"], listener.arn)
            data["Port"] = req["Port"]
        if req.get("DefaultActions"):
            data["DefaultActions"] = validate.actions(req["DefaultActions"], self._tg_exists)
            self._check_tg_owner(lb.arn, data["DefaultActions"])
        with self.store.transaction():
            self.store.put(
                Resource(listener.arn, LISTENER, lb.arn, None, data, {}, listener.created)
            )
            self.store.put(
                self._default_rule(listener.arn, data["DefaultActions"], listener.created)
            )
        self.controller.notify()
        return {"Listeners": [data]}

    def delete_listener(self, req: dict[str, Any]) -> dict[str, Any]:
        listener = self._listener(req["ListenerArn"])
        rules = [r.arn for r in self.store.all(RULE, listener.arn)]
        self.store.delete(*rules, listener.arn)
        self.controller.notify()
        return {}

    # rules -------------------------------------------------------------------------------------
    def _priorities(self, listener_arn: str, skip: set[str]) -> set[int]:
        return {
            int(r.data["Priority"])
            for r in self.store.all(RULE, listener_arn)
            if not r.data["IsDefault"] and r.arn not in skip
        }

    def create_rule(self, req: dict[str, Any]) -> dict[str, Any]:
        listener = self._listener(req["ListenerArn"])
        priority = req["Priority"]
        validate.priority(priority)
        conditions = validate.conditions(req["Conditions"])
        actions = validate.actions(req["Actions"], self._tg_exists)
        self._check_tg_owner(listener.parent or "", actions)
        tags = self._tags_in(req.get("Tags"))
        if priority in self._priorities(listener.arn, set()):
            raise PriorityInUse(f"Priority '{priority}' is currently in use")
        arn = self._rule_arn(listener.arn)
        data = {
            "RuleArn": arn,
            "Priority": str(priority),
            "Conditions": conditions,
            "Actions": actions,
            "IsDefault": False,
        }
        with self.store.transaction():
            self.store.put(Resource(arn, RULE, listener.arn, None, data, {}, self.clock.now()))
            self.store.set_tags(arn, tags)
        self.controller.notify()
        return {"Rules": [data]}

    def describe_rules(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("RuleArns"):
            rules = [self._rule(a) for a in req["RuleArns"]]
        elif req.get("ListenerArn"):
            rules = self.store.all(RULE, self._listener(req["ListenerArn"]).arn)
        else:
            raise ValidationError("You must specify either listener ARN or rule ARNs")
        rules.sort(
            key=lambda r: (
                r.data["IsDefault"],
                int(r.data["Priority"]) if not r.data["IsDefault"] else 0,
            )
        )
        return {"Rules": [r.data for r in rules]}

    def modify_rule(self, req: dict[str, Any]) -> dict[str, Any]:
        rule = self._rule(req["RuleArn"])
        data = dict(rule.data)
        if req.get("Conditions") is not None:
            if data["IsDefault"] and req["Conditions"]:
                raise OperationNotPermitted("Conditions cannot be added to a default rule")
            data["Conditions"] = validate.conditions(req["Conditions"]) if req["Conditions"] else []
        listener = self._listener(rule.parent or "")
        if req.get("Actions"):
            data["Actions"] = validate.actions(req["Actions"], self._tg_exists)
            self._check_tg_owner(listener.parent or "", data["Actions"])
        with self.store.transaction():
            self.store.put(Resource(rule.arn, RULE, rule.parent, None, data, {}, rule.created))
            if data["IsDefault"]:
                ldata = {**listener.data, "DefaultActions": data["Actions"]}
                self.store.put(
                    Resource(
                        listener.arn, LISTENER, listener.parent, None, ldata, {}, listener.created
                    )
                )
        self.controller.notify()
        return {"Rules": [data]}

    def set_rule_priorities(self, req: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, int] = {}
        rules: dict[str, Resource] = {}
        for item in req["RulePriorities"]:
            # both members are optional in the model: a pair without them is a client's fault
            rule = self._rule(item.get("RuleArn", ""))
            if rule.data["IsDefault"]:
                raise OperationNotPermitted("The default rule's priority cannot be changed")
            validate.priority(item.get("Priority", 0))
            changes[rule.arn] = item["Priority"]
            rules[rule.arn] = rule
        by_listener: dict[str, list[str]] = {}
        for arn, rule in rules.items():
            by_listener.setdefault(rule.parent or "", []).append(arn)
        for listener_arn, arns in by_listener.items():
            taken = self._priorities(listener_arn, set(arns))
            new = [changes[a] for a in arns]
            clash = [p for p in new if p in taken or new.count(p) > 1]
            if clash:
                raise PriorityInUse(f"Priority '{clash[0]}' is currently in use")
        updated = []
        for arn, rule in rules.items():
            data = {**rule.data, "Priority": str(changes[arn])}
            updated.append(Resource(arn, RULE, rule.parent, None, data, {}, rule.created))
        self.store.put_many(updated)
        self.controller.notify()
        return {"Rules": [r.data for r in updated]}

    def delete_rule(self, req: dict[str, Any]) -> dict[str, Any]:
        rule = self._rule(req["RuleArn"])
        if rule.data["IsDefault"]:
            raise OperationNotPermitted("Default rule cannot be deleted")
        self.store.delete(rule.arn)
        self.controller.notify()
        return {}

    # tags --------------------------------------------------------------------------------------
    def _tags_in(self, tags: list[dict[str, str]] | None) -> dict[str, str]:
        out: dict[str, str] = {}
        for tag in tags or []:
            if tag["Key"] in out:
                raise ValidationError(f"Duplicate tag key '{tag['Key']}'")
            out[tag["Key"]] = tag.get("Value", "")
        if len(out) > MAX_TAGS:
            raise TooManyTags()
        return out

    def _tagged(self, arn: str) -> Resource:
        kind = arn.split(":", 5)[-1].split("/", 1)[0] if arn.count(":") >= 5 else ""
        lookups = {
            "loadbalancer": self._lb,
            "targetgroup": self._tg,
            "listener": self._listener,
            "listener-rule": self._rule,
        }
        if kind not in lookups:
            raise ValidationError(f"'{arn}' is not a valid load balancer resource ARN")
        return lookups[kind](arn)

    def add_tags(self, req: dict[str, Any]) -> dict[str, Any]:
        new = self._tags_in(req["Tags"])
        resources = [self._tagged(a) for a in req["ResourceArns"]]
        for r in resources:
            if len({**self.store.tags(r.arn), **new}) > MAX_TAGS:
                raise TooManyTags()
        with self.store.transaction():
            for r in resources:
                self.store.set_tags(r.arn, new)
        return {}

    def remove_tags(self, req: dict[str, Any]) -> dict[str, Any]:
        resources = [self._tagged(a) for a in req["ResourceArns"]]
        with self.store.transaction():
            for r in resources:
                self.store.remove_tags(r.arn, req["TagKeys"])
        return {}

    def describe_tags(self, req: dict[str, Any]) -> dict[str, Any]:
        if len(req["ResourceArns"]) > 20:
            raise ValidationError("You can specify at most 20 resource ARNs")
        resources = [self._tagged(a) for a in req["ResourceArns"]]
        out = []
        for r in resources:
            tags = [{"Key": k, "Value": v} for k, v in self.store.tags(r.arn).items()]
            # TagList has a minimum length of 1: no tags means no Tags member.
            out.append({"ResourceArn": r.arn, **({"Tags": tags} if tags else {})})
        return {"TagDescriptions": out}
