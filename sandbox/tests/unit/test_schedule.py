"""sandbox.schedule: Frequency parsing and next run times (reference §2.1.1)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from sandbox.errors import ApiError
from sandbox.schedule import AtSchedule, CronSchedule, RateSchedule, Schedule, parse_frequency, parse_timezone


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def fmt(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


NOW = utc(2026, 1, 1)  # a Thursday


def runs(frequency: str, n: int = 4, now: float = NOW, timeout: int = 60) -> list[str | None]:
    return [fmt(t) for t in parse_frequency(frequency, timeout, now=now).upcoming(now, n)]


def bad(frequency: str, timeout: int = 60, now: float = NOW) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_frequency(frequency, timeout, now=now)
    assert info.value.code == "InvalidParam.Frequency"
    assert info.value.status == 400
    return info.value


# --- rate() ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("frequency", "interval"),
    [
        ("rate(5m)", 300),
        ("rate(61s)", 61),
        ("rate(2h)", 7200),
        ("rate(1d)", 86400),
        ("rate(7d)", 604800),
        ("rate(168h)", 604800),
        ("rate(10080m)", 604800),
        ("RATE(5M)", 300),
        ("rate( 5 m )", 300),
        ("  rate(5m)  ", 300),
        ("rate(05m)", 300),
    ],
)
def test_rate_ok(frequency: str, interval: int) -> None:
    schedule = parse_frequency(frequency, 60)
    assert isinstance(schedule, RateSchedule)
    assert schedule.kind == "rate"
    assert schedule.interval == interval
    created = 1_700_000_000.0
    assert schedule.next_after(created) == created + interval  # first run one interval after creation


def test_rate_example_runs() -> None:
    assert runs("rate(5m)") == ["2026-01-01 00:05:00", "2026-01-01 00:10:00", "2026-01-01 00:15:00",
                                "2026-01-01 00:20:00"]


@pytest.mark.parametrize(
    ("frequency", "timeout", "needle"),
    [
        ("rate(59s)", 10, "between 60 seconds and 7 days"),
        ("rate(0m)", 10, "between 60 seconds and 7 days"),
        ("rate(8d)", 60, "between 60 seconds and 7 days"),
        ("rate(169h)", 60, "between 60 seconds and 7 days"),
        ("rate(604801s)", 60, "between 60 seconds and 7 days"),
        ("rate(1m)", 60, "greater than Timeout"),  # interval must be strictly greater than Timeout
        ("rate(60s)", 60, "greater than Timeout"),
        ("rate(5m)", 300, "greater than Timeout"),
        ("rate(5m)", 3600, "greater than Timeout"),
        ("rate(5)", 60, "rate(<number><s|m|h|d>)"),
        ("rate(5w)", 60, "rate(<number><s|m|h|d>)"),
        ("rate(-5m)", 60, "rate(<number><s|m|h|d>)"),
        ("rate(1.5h)", 60, "rate(<number><s|m|h|d>)"),
        ("rate(5m", 60, "rate(<number><s|m|h|d>)"),
        ("rate 5m", 60, "rate(<number><s|m|h|d>)"),
        ("rate(5m) x", 60, "rate(<number><s|m|h|d>)"),
    ],
)
def test_rate_errors(frequency: str, timeout: int, needle: str) -> None:
    assert needle in bad(frequency, timeout).message


def test_rate_vs_timeout_boundary() -> None:
    assert parse_frequency("rate(61s)", 60).kind == "rate"
    bad("rate(61s)", 61)
    assert parse_frequency("rate(2m)", 119).kind == "rate"
    bad("rate(2m)", 120)


def test_rate_without_anchor_is_start_to_start() -> None:
    schedule = parse_frequency("rate(5m)", 60)
    assert schedule.next_after(1000.5) == 1300.5


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1000.0, 1300.0),  # at creation: one interval later
        (500.0, 1300.0),  # before creation: still the first run
        (1299.9, 1300.0),
        (1300.0, 1600.0),  # strictly after
        (1450.0, 1600.0),
        (1000.0 + 300 * 1000 + 1, 1000.0 + 300 * 1001),  # stays on the grid after missed runs
    ],
)
def test_rate_with_anchor_stays_on_grid(ts: float, expected: float) -> None:
    schedule = parse_frequency("rate(5m)", 60, anchor=1000.0)
    assert schedule.next_after(ts) == expected


# --- at() -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("frequency", "expected"),
    [
        ("at(2026-12-01 10:00:00 GMT+8:00)", "2026-12-01 02:00:00"),  # reference example
        ("at(2026-12-01 10:00:00)", "2026-12-01 10:00:00"),  # default UTC
        ("at(2026-12-01 10:00:00 UTC)", "2026-12-01 10:00:00"),
        ("at(2026-12-01 10:00:00 GMT-7:00)", "2026-12-01 17:00:00"),
        ("at(2026-12-01 10:00:00 GMT+5:30)", "2026-12-01 04:30:00"),
        ("at(2026-12-01 10:00:00 Asia/Shanghai)", "2026-12-01 02:00:00"),
        ("at(2026-07-01 10:00:00 America/New_York)", "2026-07-01 14:00:00"),  # EDT
        ("at(2026-12-01 10:00:00 America/New_York)", "2026-12-01 15:00:00"),  # EST
        ("AT(2026-12-01 10:00:00)", "2026-12-01 10:00:00"),
        ("at( 2026-12-01 10:00:00 )", "2026-12-01 10:00:00"),
    ],
)
def test_at(frequency: str, expected: str) -> None:
    schedule = parse_frequency(frequency, 60)
    assert isinstance(schedule, AtSchedule)
    assert schedule.kind == "at"
    when = schedule.next_after(NOW)
    assert fmt(when) == expected
    assert when is not None
    assert schedule.next_after(when - 0.5) == when
    assert schedule.next_after(when) is None  # strictly after: no run left
    assert schedule.next_after(when + 1) is None
    assert schedule.upcoming(NOW, 5) == [when]


def test_at_in_the_past_parses_but_never_runs() -> None:
    schedule = parse_frequency("at(2020-01-01 00:00:00)", 60)
    assert schedule.next_after(time.time()) is None


@pytest.mark.parametrize(
    "frequency",
    [
        "at(2026-12-01)",
        "at(2026-12-01 10:00)",
        "at(2026-12-01T10:00:00)",
        "at(2026/12/01 10:00:00)",
        "at(2026-02-30 10:00:00)",
        "at(2026-12-01 24:00:00)",
        "at(2026-13-01 10:00:00)",
        "at(2026-12-01 10:00:00 GMT+8)",
        "at(2026-12-01 10:00:00 GMT+15:00)",
        "at(2026-12-01 10:00:00 GMT+8:60)",
        "at(2026-12-01 10:00:00 Mars/Olympus)",
        "at(2026-12-01 10:00:00 CST)",
        "at(2026-12-01 10:00:00 UTC extra)",
        "at 2026-12-01 10:00:00",
    ],
)
def test_at_errors(frequency: str) -> None:
    bad(frequency)


# --- time zones -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("spec", "offset_hours"),
    [
        ("UTC", 0), ("utc", 0),
        ("GMT+8:00", 8), ("GMT-7:00", -7), ("GMT+0:00", 0), ("GMT+10:00", 10), ("gmt+8:00", 8),
        ("GMT+5:45", 5.75), ("GMT+14:00", 14), ("GMT-12:00", -12),
        ("Asia/Shanghai", 8), ("Asia/Tokyo", 9), ("Etc/GMT-8", 8),
    ],
)
def test_parse_timezone(spec: str, offset_hours: float) -> None:
    offset = datetime(2026, 1, 15, tzinfo=parse_timezone(spec)).utcoffset()
    assert offset is not None
    assert offset.total_seconds() == offset_hours * 3600


@pytest.mark.parametrize("spec", ["GMT+8", "GMT+15:00", "GMT+14:30", "GMT8:00", "UTC+8:00", "Asia", "Japan",
                                  "../etc/passwd", "Asia/Nowhere", "+08:00", "CST"])
def test_parse_timezone_errors(spec: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_timezone(spec)
    assert info.value.code == "InvalidParam.Frequency"


@pytest.mark.parametrize("spec", ["GMT+08:00", "GMT-07:00", "GMT+00:00", "GMT", "gmt"])
@pytest.mark.parametrize("form", ["at(2026-12-01 10:00:00 {tz})", "0 0 8 ? * * {tz}", "0 0 8 ? * * 2026 {tz}"])
def test_timezones_outside_the_documented_forms_are_refused(spec: str, form: str) -> None:
    """Ref §2.1.1: `GMT+8:00`/`GMT-7:00` with no leading zero on the hour, an IANA name or `UTC`; the same rule for
    at() and cron time zones."""
    assert "time zone" in bad(form.format(tz=spec)).message


# --- cron -----------------------------------------------------------------------------------------------------------

def test_cron_reference_example_every_20_minutes() -> None:
    schedule = parse_frequency("0 */20 * * * ?", 60)
    assert isinstance(schedule, CronSchedule)
    assert schedule.kind == "cron"
    assert runs("0 */20 * * * ?") == ["2026-01-01 00:20:00", "2026-01-01 00:40:00", "2026-01-01 01:00:00",
                                      "2026-01-01 01:20:00"]


def test_cron_reference_example_year_and_time_zone() -> None:
    # 10:15 Asia/Shanghai = 02:15 UTC, every day of 2022 only
    frequency = "0 15 10 ? * * 2022 Asia/Shanghai"
    before = utc(2021, 6, 1)
    assert runs(frequency, 3, now=before) == ["2022-01-01 02:15:00", "2022-01-02 02:15:00", "2022-01-03 02:15:00"]
    schedule = parse_frequency(frequency, 60, now=before)
    assert fmt(schedule.next_after(utc(2022, 12, 30, 12))) == "2022-12-31 02:15:00"
    assert schedule.next_after(utc(2022, 12, 31, 2, 15)) is None  # the year is over
    # parsing it today works too: it simply has no run left
    assert parse_frequency(frequency, 60).next_after(time.time()) is None


@pytest.mark.parametrize(
    ("frequency", "expected"),
    [
        # seconds field (croniter's 6/7-field mode with seconds first)
        ("30 0 0 * * ?", ["2026-01-01 00:00:30", "2026-01-02 00:00:30"]),
        ("0 0 12 * * ?", ["2026-01-01 12:00:00", "2026-01-02 12:00:00"]),
        ("0 15 10 ? * *", ["2026-01-01 10:15:00", "2026-01-02 10:15:00"]),
        ("0 15 10 * * ?", ["2026-01-01 10:15:00", "2026-01-02 10:15:00"]),
        ("0 0 10,14,16 * * ?", ["2026-01-01 10:00:00", "2026-01-01 14:00:00"]),
        ("0 0/30 9-17 * * ?", ["2026-01-01 09:00:00", "2026-01-01 09:30:00"]),
        ("0 15 10 15 * ?", ["2026-01-15 10:15:00", "2026-02-15 10:15:00"]),
        ("0 15 10 L * ?", ["2026-01-31 10:15:00", "2026-02-28 10:15:00"]),
        ("0 0 0 LW * ?", ["2026-01-30 00:00:00", "2026-02-27 00:00:00", "2026-03-31 00:00:00",
                          "2026-04-30 00:00:00", "2026-05-29 00:00:00"]),
        ("0 0 0 15W * ?", ["2026-01-15 00:00:00", "2026-02-16 00:00:00", "2026-03-16 00:00:00"]),  # Feb 15 = Sun
        ("0 0 0 1 JAN ?", ["2027-01-01 00:00:00", "2028-01-01 00:00:00"]),
        ("0 0 0 1 january ?", ["2027-01-01 00:00:00"]),
        ("0 0 0 1 1-2 ?", ["2026-02-01 00:00:00", "2027-01-01 00:00:00"]),  # NOW is exactly a run: strictly after
        ("0 0 8 ? * * 2027", ["2027-01-01 08:00:00"]),
        ("0 0 8 1 1 ? 2027-2028", ["2027-01-01 08:00:00", "2028-01-01 08:00:00", None]),
        ("0 0 8 1 1 ? 2027,2030", ["2027-01-01 08:00:00", "2030-01-01 08:00:00", None]),
        ("0 0 8 1 1 ? */4", ["2026-01-01 08:00:00", "2030-01-01 08:00:00"]),  # 1970 + 4k
        ("0 0 8 1 1 ? ?", ["2026-01-01 08:00:00", "2027-01-01 08:00:00"]),
        ("0 0 0 29 2 ? 2096", ["2096-02-29 00:00:00", None]),  # far years are found
        ("0 0 0 30 2 ?", [None]),  # never: parses, no run
        ("0 0 8 ? * * GMT+8:00", ["2026-01-02 00:00:00", "2026-01-03 00:00:00"]),  # 08:00 +8 = 00:00 UTC = NOW
        ("0 0 08 ? * * 2026 GMT-7:00", ["2026-01-01 15:00:00"]),
        ("00 05 08 01 01 ?", ["2026-01-01 08:05:00", "2027-01-01 08:05:00"]),  # one leading zero is fine
    ],
)
def test_cron_runs(frequency: str, expected: list[str | None]) -> None:
    got = runs(frequency, len(expected), timeout=10)
    got += [None] * (len(expected) - len(got))
    assert got == expected


@pytest.mark.parametrize(
    ("frequency", "weekdays"),
    [
        # day of week: 1 = Monday .. 6 = Saturday, 7 = Sunday (agent / current user guide), names SUN..SAT
        ("0 0 12 ? * 1", {"Mon"}),
        ("0 0 12 ? * 6", {"Sat"}),
        ("0 0 12 ? * 7", {"Sun"}),
        ("0 0 12 ? * SUN", {"Sun"}),
        ("0 0 12 ? * WED", {"Wed"}),
        ("0 0 12 ? * wednesday", {"Wed"}),
        ("0 0 12 ? * MON-FRI", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0 0 12 ? * 1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0 0 12 ? * 6,7", {"Sat", "Sun"}),
        ("0 0 12 ? * SAT,SUN", {"Sat", "Sun"}),
        ("0 0 12 ? * FRI-MON", {"Fri", "Sat", "Sun", "Mon"}),  # wrap-around range
        ("0 0 12 ? * 1/2", {"Mon", "Wed", "Fri"}),
        ("0 0 12 ? * */3", {"Sun", "Wed", "Sat"}),
    ],
)
def test_cron_day_of_week(frequency: str, weekdays: set[str]) -> None:
    schedule = parse_frequency(frequency, 60, now=NOW)
    seen = {datetime.fromtimestamp(t, UTC).strftime("%a") for t in schedule.upcoming(NOW, 21)}
    assert seen == weekdays


@pytest.mark.parametrize("dow", ["0", "00", "0,3", "0-5", "0L", "0#2", "0/2"])
def test_cron_day_of_week_zero_is_refused(dow: str) -> None:
    """The documented day-of-week range is 1-7 (7 = Sunday); 0 is refused even though the agent's library reads it
    as Sunday."""
    assert "day-of-week value 0" in bad(f"0 0 12 ? * {dow}").message


@pytest.mark.parametrize(
    ("frequency", "expected"),
    [
        ("0 15 10 ? * 5L", ["2026-01-30 10:15:00", "2026-02-27 10:15:00"]),  # last Friday
        ("0 15 10 ? * FRIL", ["2026-01-30 10:15:00"]),
        ("0 15 10 ? * 5#3", ["2026-01-16 10:15:00", "2026-02-20 10:15:00"]),  # third Friday
        ("0 15 10 ? * FRI#3", ["2026-01-16 10:15:00"]),
        ("0 15 10 ? * 7#1", ["2026-01-04 10:15:00", "2026-02-01 10:15:00"]),  # first Sunday
        ("0 10,44 14 ? 3 WED", ["2026-03-04 14:10:00", "2026-03-04 14:44:00", "2026-03-11 14:10:00"]),
        # both day fields restricted: a day matching either one runs (cron OR rule)
        ("0 0 0 15 * MON", ["2026-01-05 00:00:00", "2026-01-12 00:00:00", "2026-01-15 00:00:00"]),
    ],
)
def test_cron_special_days(frequency: str, expected: list[str]) -> None:
    assert runs(frequency, len(expected)) == expected


def test_cron_time_zone_fires_at_the_right_utc_instant() -> None:
    # 09:30:00 every day in Shanghai (UTC+8, no DST) = 01:30:00 UTC
    schedule = parse_frequency("0 30 9 * * ? Asia/Shanghai", 60, now=NOW)
    assert [fmt(t) for t in schedule.upcoming(NOW, 2)] == ["2026-01-01 01:30:00", "2026-01-02 01:30:00"]
    # midnight in Shanghai is 16:00 UTC of the day before
    schedule = parse_frequency("0 0 0 1 * ? Asia/Shanghai", 60, now=NOW)
    assert fmt(schedule.next_after(NOW)) == "2026-01-31 16:00:00"
    # the same instant through a fixed offset
    schedule = parse_frequency("0 0 0 1 * ? GMT+8:00", 60, now=NOW)
    assert fmt(schedule.next_after(NOW)) == "2026-01-31 16:00:00"
    local = datetime.fromtimestamp(schedule.next_after(NOW) or 0, ZoneInfo("Asia/Shanghai"))
    assert (local.day, local.hour, local.minute) == (1, 0, 0)


def test_cron_follows_daylight_saving_time() -> None:
    # 12:00 New York = 17:00 UTC in winter (EST), 16:00 UTC in summer (EDT)
    frequency = "0 0 12 * * ? America/New_York"
    schedule = parse_frequency(frequency, 60, now=NOW)
    assert fmt(schedule.next_after(utc(2026, 1, 10))) == "2026-01-10 17:00:00"
    assert fmt(schedule.next_after(utc(2026, 7, 10))) == "2026-07-10 16:00:00"
    # across the March 8 2026 change
    assert [fmt(t) for t in schedule.upcoming(utc(2026, 3, 7), 2)] == ["2026-03-07 17:00:00", "2026-03-08 16:00:00"]


def test_cron_default_time_zone_is_utc() -> None:
    assert runs("0 0 9 * * ?", 1) == ["2026-01-01 09:00:00"]
    assert runs("0 0 9 * * ? UTC", 1) == ["2026-01-01 09:00:00"]
    assert runs("0 0 9 * * ? * UTC", 1) == ["2026-01-01 09:00:00"]


def test_cron_next_after_is_strict_and_handles_fractions() -> None:
    schedule = parse_frequency("0 */20 * * * ?", 60, now=NOW)
    on_run = utc(2026, 1, 1, 0, 20)
    assert schedule.next_after(on_run) == utc(2026, 1, 1, 0, 40)
    assert schedule.next_after(on_run - 0.25) == on_run
    assert schedule.next_after(on_run + 0.25) == utc(2026, 1, 1, 0, 40)


def test_cron_second_level_schedule() -> None:
    schedule = parse_frequency("*/15 * * * * ?", 10, now=NOW)
    assert [fmt(t) for t in schedule.upcoming(NOW, 3)] == ["2026-01-01 00:00:15", "2026-01-01 00:00:30",
                                                           "2026-01-01 00:00:45"]
    assert schedule.next_after(NOW + 15.5) == NOW + 30


@pytest.mark.parametrize(
    ("frequency", "timeout", "ok"),
    [
        ("*/10 * * * * ?", 10, True),  # exactly 10 s
        ("*/10 * * * * ?", 5, True),
        ("*/5 * * * * ?", 1, False),  # below the 10 s floor whatever the Timeout
        ("* * * * * ?", 10, False),
        ("*/10 * * * * ?", 11, False),  # below Timeout
        ("*/10 * * * * ?", 60, False),
        ("0 * * * * ?", 60, True),  # exactly Timeout: "not below"
        ("0 * * * * ?", 61, False),
        ("0 */20 * * * ?", 1200, True),
        ("0 */20 * * * ?", 1201, False),
        ("0,5 0 0 * * ?", 10, False),  # a burst inside a daily schedule
        ("0,30 0 0 * * ?", 10, True),
        ("0 0 0 1 1 ? 2030", 86400, True),  # a single run has no interval
    ],
)
def test_cron_minimum_interval(frequency: str, timeout: int, ok: bool) -> None:
    if ok:
        assert parse_frequency(frequency, timeout, now=NOW).kind == "cron"
    else:
        assert "apart" in bad(frequency, timeout).message


@pytest.mark.parametrize(
    ("frequency", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("0 0 * * *", "6 to 8 fields"),
        ("0 0 0 * * ? 2026 UTC extra", "6 to 8 fields"),
        ("@daily", "6 to 8 fields"),
        ("60 0 0 * * ?", "second value 60"),
        ("0 60 0 * * ?", "minute value 60"),
        ("0 0 24 * * ?", "hour value 24"),
        ("0 0 0 0 * ?", "day-of-month value 0"),
        ("0 0 0 32 * ?", "day-of-month value 32"),
        ("0 0 0 * 13 ?", "month value 13"),
        ("0 0 0 * 0 ?", "month value 0"),
        ("0 0 0 ? * 8", "day-of-week value 8"),
        ("0 0 0 * * ? 1969", "year value 1969"),
        ("0 0 0 * * ? 2100", "year value 2100"),
        ("0 0 0 * * ? 26", "4 digits"),
        ("0 0 008 * * ?", "leading zero"),
        ("? 0 0 * * *", "only allowed"),
        ("0 ? 0 * * *", "only allowed"),
        ("0 0 0 * ? *", "only allowed"),
        ("0 0 0 1,? * ?", "cannot be combined"),
        ("0 0 0 * * MOO", "\"moo\""),
        ("0 0 0 1 FOO ?", "\"foo\""),
        ("0 0 0 ? * L", "day-of-week"),
        ("0 0 0 L-3 * ?", "day-of-month"),
        ("0 0 0 LW,15 * ?", "day-of-month"),
        ("0 0 0 LW * MON", "LW"),
        ("0 0 0 15W,20 * ?", "single day"),
        ("0 0 0 ? * 5#6", "#1 to #5"),
        ("0 0 0 ? * 5#0", "#1 to #5"),
        ("0 0 0 ? * 1,5L", "cannot be parsed"),  # croniter refuses mixing plain days and nth days
        ("*/0 * * * * ?", "step"),
        ("*/61 * * * * ?", "step"),
        ("0 0 0 ? * */7", "step"),
        ("0 0/ * * * ?", "not valid"),
        ("0 0 0 1-* * ?", "not valid"),
        ("0 0 0 1,,2 * ?", "empty list item"),
        ("H 0 0 * * ?", "\"h\""),  # croniter's hash syntax is not cron
        ("0 0 0 * * ? Mars/Olympus", "time zone"),
        ("0 0 0 * * ? 2026 Nowhere", "time zone"),
        ("0 0 0 * * ? GMT+8", "GMT+8:00"),
        ("cron(0 0 0 * * ?)", "not valid in the second field"),
    ],
)
def test_cron_errors(frequency: str, needle: str) -> None:
    assert needle in bad(frequency).message


def test_schedule_interface() -> None:
    for frequency in ("rate(5m)", "at(2030-01-01 00:00:00)", "0 */20 * * * ?"):
        schedule = parse_frequency(frequency, 60)
        assert isinstance(schedule, Schedule)
        assert schedule.kind in {"rate", "at", "cron"}
        assert schedule.frequency == frequency
        nxt = schedule.next_after(time.time())
        assert nxt is not None and nxt > time.time() - 1
    with pytest.raises(NotImplementedError):
        Schedule("x").next_after(0)
