import pickle
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from flux.errors import InvalidScheduleError, UsageError
from flux.schedules import (
    AnySchedule,
    CronSchedule,
    IntervalSchedule,
    OnceSchedule,
    Schedule,
    cron,
    interval,
    once,
    schedule_from_config,
)
from pydantic import BaseModel, ValidationError

NEW_YORK = ZoneInfo("America/New_York")
LISBON = ZoneInfo("Europe/Lisbon")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runs(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    out = []
    for _ in range(count):
        after = schedule.next_run_after(after)
        assert after is not None
        out.append(after)
    return out


# --- cron ---------------------------------------------------------------------------------


def test_weekday_cron_skips_the_weekend():
    schedule = cron("0 9 * * MON-FRI", timezone="UTC")
    assert isinstance(schedule, CronSchedule)
    friday_9am = utc(2024, 1, 5, 9, 0)
    assert schedule.next_run_after(friday_9am) == utc(2024, 1, 8, 9, 0)
    assert schedule.next_run_after(utc(2024, 1, 6, 12, 0)) == utc(2024, 1, 8, 9, 0)
    assert schedule.next_run_after(utc(2024, 1, 3, 8, 59, 59)) == utc(2024, 1, 3, 9, 0)
    assert runs(schedule, friday_9am, 5) == [utc(2024, 1, d, 9) for d in (8, 9, 10, 11, 12)]


def test_cron_returns_aware_utc_and_reads_naive_as_utc():
    schedule = cron("15 * * * *")
    result = schedule.next_run_after(datetime(2024, 1, 1, 10, 20))
    assert result == utc(2024, 1, 1, 11, 15)
    assert result.tzinfo is UTC
    plus_two = timezone(timedelta(hours=2))
    assert schedule.next_run_after(datetime(2024, 1, 1, 12, 20, tzinfo=plus_two)) == result


def test_cron_is_evaluated_on_its_timezone_clock():
    schedule = cron("0 9 * * *", timezone="Europe/Lisbon")
    assert schedule.next_run_after(utc(2024, 1, 10, 0)) == utc(2024, 1, 10, 9)  # WET = UTC
    assert schedule.next_run_after(utc(2024, 7, 10, 0)) == utc(2024, 7, 10, 8)  # WEST = UTC+1


def test_daily_time_skipped_by_spring_forward_runs_once_after_the_jump():
    # 2024-03-10 02:00 EST -> 03:00 EDT: 02:30 does not exist that day.
    schedule = cron("30 2 * * *", timezone="America/New_York")
    got = runs(schedule, utc(2024, 3, 9, 12), 3)
    assert got == [utc(2024, 3, 10, 7, 30), utc(2024, 3, 11, 6, 30), utc(2024, 3, 12, 6, 30)]
    assert got[0].astimezone(NEW_YORK).hour == 3  # 03:30 EDT, one hour after the jump
    assert [t.astimezone(NEW_YORK).hour for t in got[1:]] == [2, 2]


def test_spring_forward_run_is_found_when_searching_from_just_after_the_jump():
    schedule = cron("30 2 * * *", timezone="America/New_York")
    just_after_jump = utc(2024, 3, 10, 7, 10)  # 03:10 EDT
    assert schedule.next_run_after(just_after_jump) == utc(2024, 3, 10, 7, 30)


def test_daily_time_repeated_by_fall_back_runs_once():
    # 2024-11-03 02:00 EDT -> 01:00 EST: 01:30 happens twice that day.
    schedule = cron("30 1 * * *", timezone="America/New_York")
    got = runs(schedule, utc(2024, 11, 2, 12), 3)
    assert got == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30), utc(2024, 11, 5, 6, 30)]
    # From inside the repeated hour, the second 01:30 (06:30Z) is not a run.
    assert schedule.next_run_after(utc(2024, 11, 3, 6, 10)) == utc(2024, 11, 4, 6, 30)


def test_lisbon_transitions_for_a_time_inside_the_changed_hour():
    schedule = cron("30 1 * * *", timezone="Europe/Lisbon")
    # 2024-03-31 01:00 WET -> 02:00 WEST: 01:30 is skipped, the run happens at 02:30 WEST.
    assert runs(schedule, utc(2024, 3, 30, 12), 2) == [
        utc(2024, 3, 31, 1, 30),
        utc(2024, 4, 1, 0, 30),
    ]
    # 2024-10-27 02:00 WEST -> 01:00 WET: 01:30 happens twice, the run happens once.
    assert runs(schedule, utc(2024, 10, 26, 12), 2) == [
        utc(2024, 10, 27, 0, 30),
        utc(2024, 10, 28, 1, 30),
    ]


def test_wildcard_hour_jobs_follow_elapsed_time_across_fall_back():
    schedule = cron("*/30 * * * *", timezone="America/New_York")
    got = runs(schedule, utc(2024, 11, 3, 4, 15), 6)  # from 00:15 EDT
    assert got == [utc(2024, 11, 3, 4, 30) + timedelta(minutes=30 * i) for i in range(6)]
    walls = [t.astimezone(NEW_YORK).strftime("%H:%M%z") for t in got]
    assert walls == [
        "00:30-0400",
        "01:00-0400",
        "01:30-0400",
        "01:00-0500",
        "01:30-0500",
        "02:00-0500",
    ]


def test_wildcard_hour_jobs_follow_elapsed_time_across_spring_forward():
    schedule = cron("*/30 * * * *", timezone="America/New_York")
    got = runs(schedule, utc(2024, 3, 10, 6, 15), 3)  # from 01:15 EST
    assert got == [utc(2024, 3, 10, 6, 30), utc(2024, 3, 10, 7, 0), utc(2024, 3, 10, 7, 30)]
    walls = [t.astimezone(NEW_YORK).strftime("%H:%M") for t in got]
    assert walls == ["01:30", "03:00", "03:30"]


def test_wildcard_hour_jobs_skip_wall_times_that_do_not_exist():
    schedule = cron("30 */2 * * *", timezone="America/New_York")
    got = runs(schedule, utc(2024, 3, 10, 5, 0), 2)  # from 00:00 EST
    walls = [t.astimezone(NEW_YORK).strftime("%H:%M") for t in got]
    assert walls == ["00:30", "04:30"]  # 02:30 never shows on the clock that night


def test_wildcard_job_in_repeated_hour_picks_the_earliest_next_instant():
    schedule = cron("*/10 * * * *", timezone="America/New_York")
    # 01:45 EDT: the next run is 01:50 EDT, not the repeated 01:00 EST.
    assert schedule.next_run_after(utc(2024, 11, 3, 5, 45)) == utc(2024, 11, 3, 5, 50)


def test_cron_macros_and_whitespace_are_normalized():
    assert cron("@daily").next_run_after(utc(2024, 1, 1, 5)) == utc(2024, 1, 2, 0)
    assert cron("  0   9 * *  1-5 ").cron_expression == "0 9 * * 1-5"


def test_cron_next_run_after_rejects_non_datetimes():
    with pytest.raises(UsageError, match="'2024-01-01'"):
        cron("* * * * *").next_run_after("2024-01-01")  # type: ignore[arg-type]  # checking the guard


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("61 * * * *", "invalid cron expression '61 * * * *'"),
        ("0 9 * *", "expected five fields"),
        ("* * * * * *", "expected five fields"),
        ("0 9 * * FUNDAY", "invalid cron expression '0 9 * * FUNDAY'"),
        ("*/0 * * * *", "invalid cron expression"),
        ("0 0 30 2 *", "never fires"),
        ("@reboot", "'@reboot'"),
        ("", "expected five fields"),
    ],
)
def test_invalid_cron_expressions(expression, fragment):
    with pytest.raises(InvalidScheduleError, match=fragment.replace("*", r"\*")):
        cron(expression)


def test_cron_wrong_types_and_unknown_timezone():
    with pytest.raises(InvalidScheduleError, match=r"must be a string.*got 5"):
        cron(5)  # type: ignore[arg-type]  # checking the guard
    with pytest.raises(InvalidScheduleError, match="unknown timezone 'Mars/Olympus'"):
        cron("0 9 * * *", timezone="Mars/Olympus")
    with pytest.raises(InvalidScheduleError, match=r"IANA name.*got 3"):
        cron("0 9 * * *", timezone=3)  # type: ignore[arg-type]  # checking the guard


def test_invalid_schedule_error_is_a_usage_error():
    with pytest.raises(UsageError):
        cron("nope")


# --- interval -----------------------------------------------------------------------------


def test_interval_without_start_runs_one_period_after():
    schedule = interval(hours=6, timezone="UTC")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.interval_seconds == 6 * 3600
    assert schedule.next_run_after(utc(2024, 1, 1, 1, 2, 3)) == utc(2024, 1, 1, 7, 2, 3)


def test_interval_with_start_runs_on_its_grid():
    schedule = interval(minutes=90, start_at=utc(2024, 1, 1, 0, 0))
    assert schedule.next_run_after(utc(2023, 12, 31)) == utc(2024, 1, 1, 0, 0)
    assert schedule.next_run_after(utc(2024, 1, 1, 0, 0)) == utc(2024, 1, 1, 1, 30)
    assert schedule.next_run_after(utc(2024, 1, 1, 1, 29, 59)) == utc(2024, 1, 1, 1, 30)
    assert schedule.next_run_after(utc(2024, 1, 1, 1, 30)) == utc(2024, 1, 1, 3, 0)
    assert schedule.next_run_after(utc(2024, 3, 1, 0, 1)) == utc(2024, 3, 1, 1, 30)


def test_interval_parts_add_up():
    assert interval(days=1, hours=2, minutes=3, seconds=4).interval_seconds == 93784
    assert interval(minutes=0.5).interval_seconds == 30


def test_interval_naive_start_is_read_in_its_timezone():
    schedule = interval(hours=1, timezone="America/New_York", start_at=datetime(2024, 1, 1, 9))
    assert schedule.start_at == utc(2024, 1, 1, 14)
    assert interval(hours=1, start_at="2024-01-01T09:00:00").start_at == utc(2024, 1, 1, 9)


def test_interval_counts_elapsed_time_across_dst():
    schedule = interval(days=1, timezone="America/New_York", start_at=datetime(2024, 3, 9, 9))
    assert runs(schedule, utc(2024, 3, 9, 15), 2) == [utc(2024, 3, 10, 14), utc(2024, 3, 11, 14)]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "longer than zero"),
        ({"seconds": 0, "hours": 0}, "longer than zero"),
        ({"hours": -1}, "interval hours must not be negative, got -1"),
        ({"hours": "6"}, "interval hours must be a number, got '6'"),
        ({"minutes": True}, "interval minutes must be a number, got True"),
        ({"seconds": float("nan")}, "must be a number"),
        ({"seconds": 1.5}, "whole number of seconds"),
        ({"hours": 1, "timezone": "Nowhere/City"}, "unknown timezone 'Nowhere/City'"),
        ({"hours": 1, "start_at": "next tuesday"}, "invalid start_at 'next tuesday'"),
    ],
)
def test_invalid_intervals(kwargs, fragment):
    with pytest.raises(InvalidScheduleError, match=fragment):
        interval(**kwargs)


# --- once ---------------------------------------------------------------------------------


def test_once_runs_only_before_its_time():
    schedule = once(utc(2025, 1, 1, 9))
    assert isinstance(schedule, OnceSchedule)
    assert schedule.next_run_after(utc(2024, 12, 31)) == utc(2025, 1, 1, 9)
    assert schedule.next_run_after(utc(2025, 1, 1, 9)) is None
    assert schedule.next_run_after(utc(2025, 1, 2)) is None


@pytest.mark.parametrize(
    "at",
    [
        datetime(2025, 1, 1, 9),
        "2025-01-01T09:00:00",
        "2025-01-01T09:00:00Z",
        "2025-01-01T10:00:00+01:00",
        datetime(2025, 1, 1, 4, tzinfo=NEW_YORK),
    ],
)
def test_once_accepts_naive_utc_aware_and_iso(at):
    run_at = once(at).run_at
    assert run_at == utc(2025, 1, 1, 9)
    assert run_at.tzinfo is UTC


@pytest.mark.parametrize(("at", "fragment"), [("soon", "'soon'"), (5, "got|5"), (None, "None")])
def test_invalid_once(at, fragment):
    with pytest.raises(InvalidScheduleError, match=fragment):
        once(at)


# --- config round trip --------------------------------------------------------------------


def test_to_config_shapes():
    assert cron("0 9 * * MON-FRI", timezone="UTC").to_config() == {
        "type": "cron",
        "cron_expression": "0 9 * * MON-FRI",
        "timezone": "UTC",
    }
    assert interval(hours=6).to_config() == {
        "type": "interval",
        "interval_seconds": 21600,
        "timezone": "UTC",
        "start_at": None,
    }
    assert interval(hours=1, start_at=utc(2024, 1, 1)).to_config()["start_at"] == (
        "2024-01-01T00:00:00+00:00"
    )
    assert once(utc(2025, 1, 1, 9)).to_config() == {
        "type": "once",
        "run_at": "2025-01-01T09:00:00+00:00",
    }


@pytest.mark.parametrize(
    "schedule",
    [
        cron("0 9 * * MON-FRI", timezone="Europe/Lisbon"),
        interval(minutes=15),
        interval(hours=1, timezone="America/New_York", start_at=datetime(2024, 5, 1, 8)),
        once("2025-06-01T12:00:00Z"),
    ],
    ids=["cron", "interval", "interval-start", "once"],
)
def test_round_trip_through_config_and_pickle(schedule):
    assert schedule_from_config(schedule.to_config()) == schedule
    assert pickle.loads(pickle.dumps(schedule)) == schedule
    assert hash(schedule_from_config(schedule.to_config())) == hash(schedule)


def test_from_config_accepts_convenience_interval_keys():
    schedule = schedule_from_config(
        {"type": "interval", "interval_hours": 1, "interval_minutes": 30}
    )
    assert schedule == interval(minutes=90)
    assert schedule_from_config({"type": "interval", "interval_days": 2}).interval_seconds == 172800


def test_from_config_cron_timezone_defaults_to_utc():
    assert schedule_from_config({"type": "cron", "cron_expression": "0 9 * * *"}) == cron(
        "0 9 * * *"
    )


def test_from_config_once_reads_naive_time_in_given_timezone():
    schedule = schedule_from_config(
        {"type": "once", "run_at": "2025-01-01T09:00:00", "timezone": "America/New_York"}
    )
    assert schedule.run_at == utc(2025, 1, 1, 14)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("cron", "must be a mapping.*got 'cron'"),
        ({}, "has no 'type'"),
        ({"type": "weekly"}, "unknown schedule type 'weekly'"),
        ({"type": None}, "unknown schedule type None"),
        ({"type": "cron"}, "missing 'cron_expression'"),
        ({"type": "cron", "cron_expression": "0 9 * * *", "tz": "UTC"}, "unknown key 'tz'"),
        ({"type": "cron", "cron_expression": "bad"}, "invalid cron expression 'bad'"),
        ({"type": "interval"}, "missing 'interval_seconds'"),
        ({"type": "interval", "interval_seconds": "x"}, "interval_seconds must be a number"),
        ({"type": "interval", "interval_seconds": 0}, "longer than zero"),
        ({"type": "interval", "interval_hours": -2}, "interval_hours must not be negative"),
        ({"type": "once"}, "missing 'run_at'"),
        ({"type": "once", "run_at": "tomorrow"}, "invalid run_at 'tomorrow'"),
        ({"type": "once", "run_at": "2025-01-01", "timezone": "X/Y"}, "unknown timezone 'X/Y'"),
    ],
)
def test_from_config_rejects_malformed_configs(config, fragment):
    with pytest.raises(InvalidScheduleError, match=fragment):
        schedule_from_config(config)


def test_from_config_passes_schedules_through():
    schedule = interval(hours=1)
    assert schedule_from_config(schedule) is schedule


def test_any_schedule_discriminates_inside_a_model():
    class Body(BaseModel):
        schedule_config: AnySchedule

    body = Body.model_validate(
        {"schedule_config": {"type": "cron", "cron_expression": "0 9 * * MON-FRI"}}
    )
    assert body.schedule_config == cron("0 9 * * MON-FRI")
    with pytest.raises(ValidationError):
        Body.model_validate({"schedule_config": {"type": "interval", "interval_seconds": -5}})


# --- values -------------------------------------------------------------------------------


def test_describe():
    assert cron("0 9 * * MON-FRI", timezone="UTC").describe() == "cron '0 9 * * MON-FRI' (UTC)"
    assert interval(hours=6).describe() == "every 6h"
    assert interval(days=1, minutes=30, seconds=5).describe() == "every 1d 30m 5s"
    assert interval(hours=1, start_at=utc(2024, 1, 1)).describe() == (
        "every 1h from 2024-01-01T00:00:00+00:00"
    )
    assert once(utc(2025, 1, 1, 9)).describe() == "once at 2025-01-01T09:00:00+00:00"
    assert str(interval(minutes=5)) == "every 5m"


def test_schedules_are_frozen_values():
    schedule = cron("0 9 * * *")
    with pytest.raises(ValidationError, match="frozen"):
        schedule.timezone = "Europe/Lisbon"  # type: ignore[misc]  # proving assignment is refused
    assert cron("0 9 * * *") == schedule
    assert cron("0 9 * * *", timezone="Europe/Lisbon") != schedule
    assert len({schedule, cron("0 9 * * *"), interval(hours=1)}) == 2
