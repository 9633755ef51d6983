"""Schedules as values: ``cron(...)``, ``interval(...)`` and ``once(...)``.

A schedule is a frozen pydantic model, validated when it is defined, that answers one question,
:meth:`Schedule.next_run_after`, and converts to and from the ``schedule_config`` JSON shape of
``POST /schedules``::

    {"type": "cron", "cron_expression": "0 9 * * MON-FRI", "timezone": "UTC"}
    {"type": "interval", "interval_seconds": 21600, "timezone": "UTC", "start_at": None}
    {"type": "once", "run_at": "2025-01-01T09:00:00+00:00"}

Times going in may be naive (read as UTC, or for an interval's ``start_at`` in its timezone);
times coming out are always aware UTC datetimes.

Cron expressions are evaluated on the wall clock of their timezone. Across daylight-saving
changes they follow classic cron (Vixie) rules:

- a fixed time that the clock skips (02:30 on a spring-forward night) runs once, shifted by the
  size of the jump (at 03:30 on the new clock); a fixed time the clock shows twice (01:30 on a
  fall-back night) runs once, the first time;
- a job with ``*`` in its minute or hour field follows elapsed time: wall times that do not exist
  are skipped and a repeated hour runs twice.

Intervals count elapsed seconds, so "every 24h" keeps its UTC rhythm across DST changes; use
cron for "every day at 09:00 local time".
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flux.errors import InvalidScheduleError, UsageError

__all__ = [
    "AnySchedule",
    "CronSchedule",
    "IntervalSchedule",
    "OnceSchedule",
    "Schedule",
    "cron",
    "interval",
    "once",
    "schedule_from_config",
]

_CRON_FIELDS = "minute hour day-of-month month day-of-week"
_CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Largest UTC offset change a DST transition makes (real rules use 30 min to 2 h). Cron search
# widens its window by this much only next to a transition.
_MAX_SHIFT = timedelta(hours=3)
# Stops a search in a pathological zone; real expressions need a handful of candidates.
_MAX_CANDIDATES = 10_000
_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
_S = TypeVar("_S", bound="Schedule")


class Schedule(BaseModel):
    """Base of every schedule. Build one with :func:`cron`, :func:`interval`, :func:`once` or
    :func:`schedule_from_config`, which raise :class:`InvalidScheduleError` on bad input."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @abstractmethod
    def next_run_after(self, after: datetime) -> datetime | None:
        """The first run strictly after ``after`` (naive means UTC), as an aware UTC datetime,
        or ``None`` when the schedule will not run again."""

    @abstractmethod
    def to_config(self) -> dict[str, Any]:
        """The JSON ``schedule_config`` shape; :func:`schedule_from_config` reads it back."""

    @abstractmethod
    def describe(self) -> str:
        """A short human description, e.g. ``every 6h``."""

    def to_dict(self) -> dict[str, Any]:
        """The same JSON shape as :meth:`to_config` (the name code written for the original
        flux-core uses)."""
        return self.to_config()

    def __str__(self) -> str:
        return self.describe()


class CronSchedule(Schedule):
    """A five-field cron expression (or a ``@daily``-style macro) on the clock of ``timezone``."""

    type: Literal["cron"] = "cron"
    cron_expression: str
    timezone: str = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _validate(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if "cron_expression" in data:
            data["cron_expression"] = _check_cron(data["cron_expression"])
        data["timezone"] = _check_timezone(data.get("timezone"))
        return data

    def next_run_after(self, after: datetime) -> datetime | None:
        from croniter import CroniterBadDateError, croniter

        after = _as_utc(after, "after")
        tz = ZoneInfo(self.timezone)
        wall = after.astimezone(tz).replace(tzinfo=None)
        # A time the clock skipped may map to an instant after ``after`` although its wall time is
        # earlier, so next to a transition the search starts a little before.
        start = wall - _MAX_SHIFT if _near_transition(tz, after) else wall
        candidates = croniter(_expand_macro(self.cron_expression), start)
        wildcard = self._wildcard
        best: datetime | None = None
        limit = datetime.max
        for _ in range(_MAX_CANDIDATES):
            try:
                candidate = candidates.get_next(datetime)
            except CroniterBadDateError:
                break
            if candidate > limit:
                break
            for instant in _instants(candidate, tz, wildcard):
                if instant > after and (best is None or instant < best):
                    best = instant
                    limit = best.astimezone(tz).replace(tzinfo=None)
                    if _near_transition(tz, best):
                        limit += _MAX_SHIFT
            if candidate >= limit:
                break
        return best

    @property
    def _wildcard(self) -> bool:
        minute, hour = _expand_macro(self.cron_expression).split()[:2]
        return minute.startswith("*") or hour.startswith("*")

    def to_config(self) -> dict[str, Any]:
        return {"type": "cron", "cron_expression": self.cron_expression, "timezone": self.timezone}

    def describe(self) -> str:
        return f"cron {self.cron_expression!r} ({self.timezone})"


class IntervalSchedule(Schedule):
    """Every ``interval_seconds`` of elapsed time, counted from ``start_at`` when it is set.

    As input, ``interval_minutes``, ``interval_hours`` and ``interval_days`` are accepted too and
    added up into ``interval_seconds``; a naive ``start_at`` is read in ``timezone``.
    """

    type: Literal["interval"] = "interval"
    interval_seconds: int
    timezone: str = "UTC"
    start_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _validate(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        units = {f"interval_{unit}" for unit in _UNIT_SECONDS}
        parts = {key: data.pop(key) for key in list(data) if key in units}
        if parts:
            data["interval_seconds"] = _total_seconds(parts, prefix="interval_")
        data["timezone"] = _check_timezone(data.get("timezone"))
        start_at = data.get("start_at")
        if start_at is not None:
            data["start_at"] = _check_datetime(start_at, "start_at", ZoneInfo(data["timezone"]))
        return data

    def next_run_after(self, after: datetime) -> datetime | None:
        after = _as_utc(after, "after")
        period = timedelta(seconds=self.interval_seconds)
        if self.start_at is None:
            return after + period
        if after < self.start_at:
            return self.start_at
        periods = (after - self.start_at) // period + 1
        return self.start_at + periods * period

    def to_config(self) -> dict[str, Any]:
        return {
            "type": "interval",
            "interval_seconds": self.interval_seconds,
            "timezone": self.timezone,
            "start_at": self.start_at.isoformat() if self.start_at else None,
        }

    def describe(self) -> str:
        text = f"every {_format_duration(self.interval_seconds)}"
        if self.start_at is not None:
            text += f" from {self.start_at.isoformat()}"
        return text


class OnceSchedule(Schedule):
    """A single run at ``run_at``. As input, a ``timezone`` key says how to read a naive time."""

    type: Literal["once"] = "once"
    run_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _validate(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        tz = ZoneInfo(_check_timezone(data.pop("timezone", None)))
        if "run_at" in data:
            data["run_at"] = _check_datetime(data["run_at"], "run_at", tz)
        return data

    def next_run_after(self, after: datetime) -> datetime | None:
        return self.run_at if self.run_at > _as_utc(after, "after") else None

    def to_config(self) -> dict[str, Any]:
        return {"type": "once", "run_at": self.run_at.isoformat()}

    def describe(self) -> str:
        return f"once at {self.run_at.isoformat()}"


AnySchedule = Annotated[CronSchedule | IntervalSchedule | OnceSchedule, Field(discriminator="type")]
"""Field type for models that carry a schedule config, e.g. a protocol request body."""

_KINDS: dict[str, type[Schedule]] = {
    "cron": CronSchedule,
    "interval": IntervalSchedule,
    "once": OnceSchedule,
}


def cron(expression: str, timezone: str = "UTC") -> CronSchedule:
    """Run on a cron expression such as ``"0 9 * * MON-FRI"``, read on the clock of ``timezone``.

    Raises:
        InvalidScheduleError: the expression or timezone is invalid, or the expression never fires.
    """
    return _build(CronSchedule, {"cron_expression": expression, "timezone": timezone})


def interval(
    *,
    seconds: float = 0,
    minutes: float = 0,
    hours: float = 0,
    days: float = 0,
    timezone: str = "UTC",
    start_at: datetime | str | None = None,
) -> IntervalSchedule:
    """Run every ``days + hours + minutes + seconds`` (a whole number of seconds, at least one).

    Runs fall on ``start_at + k * period``; without ``start_at`` the next run is one period after
    the previous. A naive ``start_at`` is read in ``timezone``.

    Raises:
        InvalidScheduleError: a part is not a number or negative, the total is not positive.
    """
    total = _total_seconds({"seconds": seconds, "minutes": minutes, "hours": hours, "days": days})
    return _build(
        IntervalSchedule,
        {"interval_seconds": total, "timezone": timezone, "start_at": start_at},
    )


def once(at: datetime | str) -> OnceSchedule:
    """Run once at ``at``: a datetime (naive means UTC) or an ISO 8601 string.

    Raises:
        InvalidScheduleError: ``at`` is neither.
    """
    return _build(OnceSchedule, {"run_at": at})


def schedule_from_config(config: Mapping[str, Any] | Schedule) -> Schedule:
    """Build a schedule from its ``schedule_config`` JSON shape (see :meth:`Schedule.to_config`).

    Intervals also accept ``interval_minutes``, ``interval_hours`` and ``interval_days``.

    Raises:
        InvalidScheduleError: the config is not a mapping, has no or an unknown ``type``, or holds
            a missing, unknown or invalid key.
    """
    if isinstance(config, Schedule):
        return config
    kinds = ", ".join(repr(kind) for kind in _KINDS)
    if not isinstance(config, Mapping):
        raise InvalidScheduleError(
            f"a schedule config must be a mapping with a 'type' key ({kinds}), got {config!r}"
        )
    if "type" not in config:
        raise InvalidScheduleError(f"schedule config {dict(config)!r} has no 'type'; use {kinds}")
    kind = config["type"]
    model = _KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidScheduleError(f"unknown schedule type {kind!r}; expected one of {kinds}")
    return _build(model, config)


def _build(model: type[_S], data: Mapping[str, Any]) -> _S:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _schedule_error(exc, model) from None


def _schedule_error(exc: ValidationError, model: type[Schedule]) -> InvalidScheduleError:
    kind = model.model_fields["type"].default
    messages = []
    for error in exc.errors(include_url=False):
        original = (error.get("ctx") or {}).get("error")
        if isinstance(original, InvalidScheduleError):
            if len(exc.errors()) == 1:
                return original
            messages.append(original.message)
            continue
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            messages.append(f"{kind} schedule config is missing {key!r}")
        elif error["type"] == "extra_forbidden":
            fields = ", ".join(repr(name) for name in model.model_fields)
            messages.append(f"unknown key {key!r} in a {kind} schedule config; expected {fields}")
        else:
            messages.append(
                f"invalid {key} {error['input']!r} for a {kind} schedule: {error['msg']}"
            )
    return InvalidScheduleError("; ".join(messages))


def _check_cron(expression: Any) -> str:
    from croniter import CroniterBadDateError, CroniterError, croniter

    example = "e.g. '0 9 * * MON-FRI'"
    if not isinstance(expression, str):
        raise InvalidScheduleError(
            f"a cron expression must be a string ({example}), got {expression!r}"
        )
    normalized = " ".join(expression.split())
    expanded = _expand_macro(normalized)
    if expanded.startswith("@"):
        macros = ", ".join(_CRON_MACROS)
        raise InvalidScheduleError(
            f"invalid cron expression {expression!r}: expected five fields or one of {macros}"
        )
    if len(expanded.split()) != 5:
        raise InvalidScheduleError(
            f"invalid cron expression {expression!r}: expected five fields "
            f"'{_CRON_FIELDS}' ({example})"
        )
    try:
        croniter(expanded, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidScheduleError(
            f"cron expression {expression!r} never fires; check its day-of-month and month"
        ) from None
    except (CroniterError, ValueError, KeyError, IndexError) as exc:
        raise InvalidScheduleError(
            f"invalid cron expression {expression!r} ({exc}); expected five fields "
            f"'{_CRON_FIELDS}' ({example})"
        ) from None
    return normalized


def _expand_macro(expression: str) -> str:
    return _CRON_MACROS.get(expression.lower(), expression)


def _check_timezone(name: Any) -> str:
    if name is None:
        return "UTC"
    if not isinstance(name, str):
        raise InvalidScheduleError(
            f"a timezone must be an IANA name such as 'UTC' or 'Europe/Lisbon', got {name!r}"
        )
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        raise InvalidScheduleError(
            f"unknown timezone {name!r}; expected an IANA name such as 'UTC' or 'Europe/Lisbon'"
        ) from None
    return name


def _check_datetime(value: Any, key: str, tz: ZoneInfo) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidScheduleError(
                f"invalid {key} {value!r}: expected an ISO 8601 datetime "
                "such as '2025-01-01T09:00:00Z'"
            ) from None
    if not isinstance(value, datetime):
        raise InvalidScheduleError(
            f"invalid {key} {value!r}: expected a datetime or an ISO 8601 string"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def _total_seconds(parts: Mapping[str, Any], prefix: str = "") -> int:
    total = 0.0
    for key, value in parts.items():
        label = key if prefix else f"interval {key}"
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidScheduleError(f"{label} must be a number, got {value!r}")
        if value < 0:
            raise InvalidScheduleError(f"{label} must not be negative, got {value!r}")
        total += value * _UNIT_SECONDS[key.removeprefix(prefix)]
    given = ", ".join(f"{key}={value!r}" for key, value in parts.items() if value)
    rounded = round(total, 6)
    if rounded <= 0:
        raise InvalidScheduleError(
            f"an interval must be longer than zero, got {given or 'nothing'}; "
            "pass seconds, minutes, hours or days"
        )
    if not rounded.is_integer():
        raise InvalidScheduleError(
            f"an interval must be a whole number of seconds, got {total!r}s from {given}"
        )
    return int(rounded)


def _as_utc(value: Any, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise UsageError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _near_transition(tz: ZoneInfo, instant: datetime) -> bool:
    before = (instant - _MAX_SHIFT).astimezone(tz).utcoffset()
    return before != (instant + _MAX_SHIFT).astimezone(tz).utcoffset()


def _instants(wall: datetime, tz: ZoneInfo, wildcard: bool) -> tuple[datetime, ...]:
    """The instants at which the clock of ``tz`` shows ``wall`` that a cron job should run at."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return (first,)
    if first < second:  # fall-back: the clock shows this time twice
        return (first, second) if wildcard else (first,)
    # spring-forward: the clock never shows this time; fold=0 reads it with the old offset,
    # which lands the run as far after the jump as the time was after its start.
    return () if wildcard else (first,)


def _format_duration(seconds: int) -> str:
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts)
