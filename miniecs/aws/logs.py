"""CloudWatch Logs on the AWS endpoint (AWS JSON 1.1, `X-Amz-Target: Logs_20140328.<Op>`).

Groups, streams, PutLogEvents with AWS's batch rules, GetLogEvents with forward and backward
tokens, FilterLogEvents with a filter pattern, retention and tags; names, limits and error
messages as CloudWatch Logs words them. Storage is `miniecs.logs.store`.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Callable
from typing import Any

from miniecs.config import ACCOUNT_ID
from miniecs.errors import AwsError, InvalidParameterException, ResourceNotFoundException
from miniecs.logs.filter import FilterPattern, parse_filter
from miniecs.logs.store import (
    EVENT_OVERHEAD,
    AlreadyExists,
    LogEvent,
    LogGroup,
    LogStore,
    LogStream,
    NoSuchGroup,
    NoSuchStream,
)

RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
"""Values PutRetentionPolicy accepts (botocore's `Days` documentation)."""
MAX_BATCH_BYTES = 1_048_576
MAX_BATCH_EVENTS = 10_000
MAX_EVENT_BYTES = 1_048_576
MAX_SPAN_MS = 24 * 3600 * 1000
TOO_NEW_MS = 2 * 3600 * 1000
TOO_OLD_MS = 14 * 86_400_000
MAX_RESPONSE_BYTES = 1_048_576
"""GetLogEvents and FilterLogEvents return at most 1 MB of events."""
FILTER_SCAN = 50_000
"""Events one FilterLogEvents call examines before it answers with a nextToken."""
_GROUP_NAME = re.compile(r"[\.\-_/#A-Za-z0-9]+")
_STREAM_NAME = re.compile(r"[^:*]*")
_TOKEN = re.compile(r"([fb])/(\d{19})(\d{37})")


def _invalid(message: str) -> AwsError:
    return InvalidParameterException(message)


def _constraint(value: object, member: str, constraint: str) -> AwsError:
    return _invalid(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {constraint}"
    )


def _group_missing() -> AwsError:
    return ResourceNotFoundException("The specified log group does not exist.")


def _stream_missing() -> AwsError:
    return ResourceNotFoundException("The specified log stream does not exist.")


def check_group_name(name: str, member: str = "logGroupName") -> None:
    if not 1 <= len(name) <= 512:
        raise _constraint(name, member, "Member must have length less than or equal to 512")
    if not _GROUP_NAME.fullmatch(name):
        raise _constraint(
            name, member, r"Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+"
        )


def check_stream_name(name: str) -> None:
    if not 1 <= len(name) <= 512:
        raise _constraint(
            name, "logStreamName", "Member must have length less than or equal to 512"
        )
    if not _STREAM_NAME.fullmatch(name):
        raise _constraint(
            name, "logStreamName", "Member must satisfy regular expression pattern: [^:*]*"
        )


def _page(
    items: list[Any], token: str | None, limit: int | None, cap: int
) -> tuple[list[Any], str | None]:
    start = 0
    if token:
        try:
            start = int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
        except (ValueError, KeyError, TypeError):
            raise _invalid("The specified nextToken is invalid.") from None
    size = cap if limit is None else int(limit)
    if not 1 <= size <= cap:
        raise _constraint(limit, "limit", f"Member must have value less than or equal to {cap}")
    page = items[start : start + size]
    more = start + size < len(items)
    return page, (
        base64.urlsafe_b64encode(json.dumps({"o": start + size}).encode()).decode()
        if more
        else None
    )


def _cursor_token(direction: str, ts: int, seq: int) -> str:
    return f"{direction}/{max(ts, 0):019d}{max(seq, 0):037d}"


def _filter_token(ts: int, seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"t": ts, "s": seq}).encode()).decode()


def _capped(events: list[LogEvent], forward: bool) -> list[LogEvent]:
    """At most 1 MB of events, keeping those nearest the start of the read."""
    out: list[LogEvent] = []
    size = 0
    for e in events if forward else reversed(events):
        size += len(e.message.encode()) + EVENT_OVERHEAD
        if size > MAX_RESPONSE_BYTES and out:
            break
        out.append(e)
    return out if forward else out[::-1]


class LogsApi:
    """CloudWatch Logs operations; `now()` is control-plane time in epoch seconds."""

    def __init__(self, store: LogStore, now: Callable[[], float], region: str) -> None:
        self.store = store
        self.now = now
        self.region = region

    def _now_ms(self) -> int:
        return int(self.now() * 1000)

    def group_arn(self, name: str) -> str:
        return f"arn:aws:logs:{self.region}:{ACCOUNT_ID}:log-group:{name}"

    def _group_name(self, request: dict[str, Any]) -> str:
        """logGroupName or logGroupIdentifier (a name or an ARN), exactly one of them."""
        name, ident = request.get("logGroupName"), request.get("logGroupIdentifier")
        if name and ident:
            raise _invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
        if ident:
            name = self._name_of_arn(ident) if ident.startswith("arn:") else ident
        if not name:
            raise _invalid("Either LogGroupName or LogGroupIdentifier must be provided.")
        check_group_name(name)
        return str(name)

    def _name_of_arn(self, arn: str) -> str:
        prefix = f"arn:aws:logs:{self.region}:{ACCOUNT_ID}:log-group:"
        if not arn.startswith(prefix):
            raise ResourceNotFoundException(f"The specified resource {arn} does not exist.")
        name = arn[len(prefix) :]
        return name[:-2] if name.endswith(":*") else name

    def _group_json(self, g: LogGroup) -> dict[str, Any]:
        arn = self.group_arn(g.name)
        return {
            "logGroupName": g.name,
            "creationTime": g.created,
            "retentionInDays": g.retention,
            "metricFilterCount": 0,
            "arn": f"{arn}:*",
            "logGroupArn": arn,
            "storedBytes": g.stored_bytes,
            "kmsKeyId": g.kms_key,
            "logGroupClass": g.log_class,
        }

    def _stream_json(self, s: LogStream) -> dict[str, Any]:
        return {
            "logStreamName": s.name,
            "creationTime": s.created,
            "firstEventTimestamp": s.first_ts,
            "lastEventTimestamp": s.last_ts,
            "lastIngestionTime": s.last_ingest,
            "uploadSequenceToken": "1",
            "arn": f"{self.group_arn(s.group)}:log-stream:{s.name}",
            "storedBytes": s.stored_bytes,
        }

    @staticmethod
    def _check_tags(tags: dict[str, str]) -> None:
        if len(tags) > 50:
            raise _invalid("A log group can have up to 50 tags.")
        for key in tags:
            if key.lower().startswith("aws:"):
                raise _invalid("Tag keys must not start with 'aws:'.")

    # log groups

    def create_log_group(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["logGroupName"]
        check_group_name(name)
        tags = dict(request.get("tags") or {})
        self._check_tags(tags)
        try:
            self.store.create_group(
                name,
                self._now_ms(),
                tags,
                request.get("kmsKeyId"),
                request.get("logGroupClass") or "STANDARD",
            )
        except AlreadyExists:
            raise AwsError(
                "The specified log group already exists", code="ResourceAlreadyExistsException"
            ) from None
        return {}

    def delete_log_group(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["logGroupName"]
        check_group_name(name)
        try:
            self.store.delete_group(name)
        except NoSuchGroup:
            raise _group_missing() from None
        return {}

    def describe_log_groups(self, request: dict[str, Any]) -> dict[str, Any]:
        prefix, pattern = request.get("logGroupNamePrefix"), request.get("logGroupNamePattern")
        if prefix and pattern:
            raise _invalid(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters."
            )
        if prefix:
            check_group_name(prefix, "logGroupNamePrefix")
        groups = self.store.groups(prefix=prefix)
        if pattern:
            groups = [g for g in groups if pattern.lower() in g.name.lower()]
        if request.get("logGroupClass"):
            groups = [g for g in groups if g.log_class == request["logGroupClass"]]
        if request.get("logGroupIdentifiers"):
            wanted = {
                self._name_of_arn(i) if i.startswith("arn:") else i
                for i in request["logGroupIdentifiers"]
            }
            groups = [g for g in groups if g.name in wanted]
        page, token = _page(groups, request.get("nextToken"), request.get("limit"), 50)
        return {"logGroups": [self._group_json(g) for g in page], "nextToken": token}

    def put_retention_policy(self, request: dict[str, Any]) -> dict[str, Any]:
        name, days = request["logGroupName"], int(request["retentionInDays"])
        check_group_name(name)
        if days not in RETENTION_DAYS:
            raise _constraint(
                days,
                "retentionInDays",
                f"Member must satisfy enum value set: [{', '.join(map(str, RETENTION_DAYS))}]",
            )
        try:
            self.store.set_retention(name, days)
        except NoSuchGroup:
            raise _group_missing() from None
        self.store.prune(self._now_ms())
        return {}

    def delete_retention_policy(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            self.store.set_retention(request["logGroupName"], None)
        except NoSuchGroup:
            raise _group_missing() from None
        return {}

    # tags (the log-group API and the ARN-based one)

    def _tag(self, name: str, tags: dict[str, str]) -> None:
        self._check_tags(tags)
        try:
            ok = self.store.tag(name, tags)
        except NoSuchGroup:
            raise _group_missing() from None
        if not ok:
            raise AwsError("A log group can have up to 50 tags.", code="TooManyTagsException")

    def tag_log_group(self, request: dict[str, Any]) -> dict[str, Any]:
        self._tag(request["logGroupName"], dict(request["tags"]))
        return {}

    def untag_log_group(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            self.store.untag(request["logGroupName"], request["tags"])
        except NoSuchGroup:
            raise _group_missing() from None
        return {}

    def list_tags_log_group(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"tags": self.store.tags(request["logGroupName"])}
        except NoSuchGroup:
            raise _group_missing() from None

    def tag_resource(self, request: dict[str, Any]) -> dict[str, Any]:
        self._tag(self._name_of_arn(request["resourceArn"]), dict(request["tags"]))
        return {}

    def untag_resource(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            self.store.untag(self._name_of_arn(request["resourceArn"]), request["tagKeys"])
        except NoSuchGroup:
            raise _group_missing() from None
        return {}

    def list_tags_for_resource(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"tags": self.store.tags(self._name_of_arn(request["resourceArn"]))}
        except NoSuchGroup:
            raise _group_missing() from None

    # log streams

    def create_log_stream(self, request: dict[str, Any]) -> dict[str, Any]:
        group, stream = request["logGroupName"], request["logStreamName"]
        check_group_name(group)
        check_stream_name(stream)
        try:
            self.store.create_stream(group, stream, self._now_ms())
        except NoSuchGroup:
            raise _group_missing() from None
        except AlreadyExists:
            raise AwsError(
                "The specified log stream already exists", code="ResourceAlreadyExistsException"
            ) from None
        return {}

    def delete_log_stream(self, request: dict[str, Any]) -> dict[str, Any]:
        group, stream = request["logGroupName"], request["logStreamName"]
        try:
            self.store.delete_stream(group, stream)
        except NoSuchGroup:
            raise _group_missing() from None
        except NoSuchStream:
            raise _stream_missing() from None
        return {}

    def describe_log_streams(self, request: dict[str, Any]) -> dict[str, Any]:
        group = self._group_name(request)
        prefix = request.get("logStreamNamePrefix")
        order = request.get("orderBy") or "LogStreamName"
        if prefix and order == "LastEventTime":
            raise _invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
        try:
            streams = self.store.streams(group, prefix)
        except NoSuchGroup:
            raise _group_missing() from None
        if order == "LastEventTime":
            streams.sort(key=lambda s: (s.last_ts or 0, s.name))
        if request.get("descending"):
            streams.reverse()
        page, token = _page(streams, request.get("nextToken"), request.get("limit"), 50)
        return {"logStreams": [self._stream_json(s) for s in page], "nextToken": token}

    # events

    def put_log_events(self, request: dict[str, Any]) -> dict[str, Any]:
        group, stream = request["logGroupName"], request["logStreamName"]
        check_group_name(group)
        check_stream_name(stream)
        events = request["logEvents"]
        if len(events) > MAX_BATCH_EVENTS:
            raise _constraint(
                "[...]", "logEvents", "Member must have length less than or equal to 10000"
            )
        sizes = [len(e["message"].encode()) + EVENT_OVERHEAD for e in events]
        for size in sizes:
            if size - EVENT_OVERHEAD > MAX_EVENT_BYTES:
                raise _invalid(
                    f"Log event too large: {size - EVENT_OVERHEAD} bytes exceeds limit of "
                    f"{MAX_EVENT_BYTES}"
                )
        if sum(sizes) > MAX_BATCH_BYTES:
            raise _invalid(
                f"Upload too large: {sum(sizes)} bytes exceeds limit of {MAX_BATCH_BYTES}"
            )
        stamps = [int(e["timestamp"]) for e in events]
        if any(b < a for a, b in itertools.pairwise(stamps)):
            raise _invalid(
                "Log events in a single PutLogEvents request must be in chronological order."
            )
        now = self._now_ms()
        info = self.store.group(group)
        if info is None:
            raise _group_missing()
        expired_before = now - info.retention * 86_400_000 if info.retention else None
        rejected: dict[str, int] = {}
        keep: list[tuple[int, str]] = []
        for i, (ts, e) in enumerate(zip(stamps, events, strict=True)):
            if ts > now + TOO_NEW_MS:
                rejected.setdefault("tooNewLogEventStartIndex", i)
            elif expired_before is not None and ts < expired_before:
                rejected["expiredLogEventEndIndex"] = i
            elif ts < now - TOO_OLD_MS:
                rejected["tooOldLogEventEndIndex"] = i
            else:
                keep.append((ts, e["message"]))
        if keep and keep[-1][0] - keep[0][0] > MAX_SPAN_MS:
            raise _invalid(
                "The batch of log events in a single PutLogEvents request cannot span more "
                "than 24 hours."
            )
        try:
            self.store.append(group, stream, keep, now)
        except NoSuchGroup:
            raise _group_missing() from None
        except NoSuchStream:
            raise _stream_missing() from None
        return {"nextSequenceToken": f"{now:056d}", "rejectedLogEventsInfo": rejected or None}

    def get_log_events(self, request: dict[str, Any]) -> dict[str, Any]:
        group = self._group_name(request)
        stream = request["logStreamName"]
        limit = int(request.get("limit") or 10_000)
        if not 1 <= limit <= 10_000:
            raise _constraint(limit, "limit", "Member must have value less than or equal to 10000")
        token = request.get("nextToken")
        after = before = None
        if token:
            match = _TOKEN.fullmatch(token)
            if match is None:
                raise _invalid("The specified nextToken is invalid.")
            cursor = (int(match.group(2)), int(match.group(3)))
            forward = match.group(1) == "f"
            after, before = (cursor, None) if forward else (None, cursor)
        else:
            forward = bool(request.get("startFromHead"))
        try:
            events = self.store.stream_events(
                group,
                stream,
                request.get("startTime"),
                request.get("endTime"),
                after,
                before,
                limit,
                forward,
            )
        except NoSuchGroup:
            raise _group_missing() from None
        except NoSuchStream:
            raise _stream_missing() from None
        events = _capped(events, forward)
        if events:
            first, last = events[0], events[-1]
            forward_token = _cursor_token("f", last.timestamp, last.seq)
            backward_token = _cursor_token("b", first.timestamp, first.seq)
        elif token:
            # Nothing more that way: the same token again, which ends the CLI's pagination.
            forward_token = token if forward else _cursor_token("f", *before or (0, 0))
            backward_token = token if not forward else _cursor_token("b", *after or (0, 0))
        else:
            forward_token, backward_token = _cursor_token("f", 0, 0), _cursor_token("b", 0, 0)
        return {
            "events": [
                {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time}
                for e in events
            ],
            "nextForwardToken": forward_token,
            "nextBackwardToken": backward_token,
        }

    def filter_log_events(self, request: dict[str, Any]) -> dict[str, Any]:
        group = self._group_name(request)
        names, prefix = request.get("logStreamNames"), request.get("logStreamNamePrefix")
        if names and prefix:
            raise _invalid(
                "Cannot specify both logStreamNames and logStreamNamePrefix in the same request."
            )
        limit = int(request.get("limit") or 10_000)
        if not 1 <= limit <= 10_000:
            raise _constraint(limit, "limit", "Member must have value less than or equal to 10000")
        pattern: FilterPattern = parse_filter(request.get("filterPattern") or "")
        after = None
        if request.get("nextToken"):
            try:
                raw = json.loads(base64.urlsafe_b64decode(request["nextToken"].encode()))
                after = (int(raw["t"]), int(raw["s"]))
            except (ValueError, KeyError, TypeError):
                raise _invalid("The specified nextToken is invalid.") from None
        start, end = request.get("startTime"), request.get("endTime")
        out: list[LogEvent] = []
        size = scanned = 0
        more = False
        try:
            while True:
                batch = self.store.group_events(group, names, prefix, start, end, after, 5_000)
                full = False
                for e in batch:
                    after = (e.timestamp, e.seq)
                    scanned += 1
                    if not pattern.matches(e.message):
                        continue
                    size += len(e.message.encode()) + EVENT_OVERHEAD
                    out.append(e)
                    full = len(out) >= limit or size >= MAX_RESPONSE_BYTES
                    if full:
                        break
                if len(batch) < 5_000 and not full:
                    break
                if full or scanned >= FILTER_SCAN:
                    more = True
                    break
        except NoSuchGroup:
            raise _group_missing() from None
        if more and after is not None:
            more = bool(self.store.group_events(group, names, prefix, start, end, after, 1))
        return {
            "events": [
                {
                    "logStreamName": e.stream,
                    "timestamp": e.timestamp,
                    "message": e.message,
                    "ingestionTime": e.ingestion_time,
                    "eventId": f"{e.seq:056d}",
                }
                for e in out
            ],
            "searchedLogStreams": [],
            "nextToken": _filter_token(*after) if more and after is not None else None,
        }
