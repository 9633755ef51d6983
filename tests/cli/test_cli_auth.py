"""``flux auth``: expiry parsing (the commands run against a real server in
tests/e2e/test_auth_e2e.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flux.errors import UsageError
from flux_cli.auth import parse_expiry

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "after"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("1w2d", timedelta(days=9)),
     ("90m", timedelta(minutes=90)), ("45 s", timedelta(seconds=45))],
)  # fmt: skip
def test_durations_count_from_now(text: str, after: timedelta) -> None:
    assert parse_expiry(text, NOW) == NOW + after


def test_times_are_iso_8601_utc_without_an_offset() -> None:
    assert parse_expiry("2027-03-04T05:06:07", NOW) == datetime(2027, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert parse_expiry("2027-03-04T05:06:07+01:00", NOW).utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize("text", ["soon", "0d", "3x", ""])
def test_anything_else_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--expires"):
        parse_expiry(text, NOW)
