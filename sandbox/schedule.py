"""`Frequency` of RunCommand/InvokeCommand -> run times (pure; reference cloud-assistant-api.md §2.1.1).

Three forms:
- `rate(<n><s|m|h|d>)`: every n units, 60 s .. 7 days, strictly longer than Timeout; the first run is one interval
  after creation and the interval is measured start-to-start.
- `at(yyyy-MM-dd HH:mm:ss[ <tz>])`: one run; tz default UTC.
- cron `<sec> <min> <hour> <day-of-month> <month> <day-of-week> [<year>] [<tz>]` (Quartz-like); runs at least
  10 s and at least Timeout apart.
Time zones (same rule for `at()` and cron): an IANA name with a `/` (`Asia/Shanghai`), `GMT+8:00` / `GMT-7:00`
(no leading zero on the hour: `GMT+08:00` is refused, as the reference says), or `UTC`; a bare `GMT` is not one of
the documented forms and is refused.

Cron field syntax follows the Cloud Assistant agent's parser (gorhill/cronexpr, `aliyun_assist_client`
`agent/taskengine/timermanager/cronscheduled.go`), which is what really computes the run times:
- day of week: 1 = Monday .. 6 = Saturday, 7 = Sunday, or SUN..SAT (also full names). This is what the current
  "Cron expressions" user guide states (range [1, 7], "1 indicates Monday and 7 indicates Sunday") and what the
  agent does; it is NOT Quartz's 1 = Sunday (the guide's `6L` / `6#3` "Friday" examples are copied from Quartz and
  wrong for the agent). `0` is outside the documented range and refused (the agent's library would read it as
  Sunday); the name SUN stays Sunday.
- `?` only in day-of-month / day-of-week (and in the year field, where the agent reads it as `*`); it means `*`.
- day-of-month: `L` (last day), `LW` (last weekday, whole field only), `<d>W` (nearest weekday, single value).
- day-of-week: `<d>L` (last <d> of the month), `<d>#<k>` (k-th <d>, k 1..5).
- numbers: at most one leading zero (`08`, not `008`); years 1970..2099 (4 digits).
- a 7-field expression's last field is the year when it starts with a digit, `*` or `?`, else a time zone.
- when both day-of-month and day-of-week are restricted, a day matching either runs (cron OR rule, as croniter and
  cronexpr do; Quartz would refuse the expression).
Every malformed or out-of-range frequency raises ApiError('InvalidParam.Frequency', <what is wrong>, 400).
"""

from __future__ import annotations

import calendar
import itertools
import math
import re
import time
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from sandbox.errors import ApiError

RATE_MIN_SECONDS = 60
RATE_MAX_SECONDS = 7 * 24 * 3600
CRON_MIN_INTERVAL = 10
# How many consecutive upcoming cron runs (from `now`) are compared against the minimum interval.
CRON_INTERVAL_SAMPLE = 8
YEAR_MIN, YEAR_MAX = 1970, 2099
# croniter gives up after this many years without a match; wide enough for any year in YEAR_MIN..YEAR_MAX.
_MAX_YEARS_BETWEEN_MATCHES = YEAR_MAX - YEAR_MIN + 1

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"rate\(\s*(\d+)\s*([smhd])\s*\)", re.IGNORECASE)
_AT = re.compile(r"at\(\s*(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\s+(\S+))?\s*\)", re.IGNORECASE)
_GMT_OFFSET = re.compile(r"GMT([+-])(0|[1-9][0-9]?):([0-9]{2})", re.IGNORECASE)  # no leading zero on the hour
_TZ_NAME = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)+")


def _bad(detail: str) -> ApiError:
    return ApiError("InvalidParam.Frequency", f"The specified parameter \"Frequency\" is not valid: {detail}", 400)


def parse_timezone(spec: str) -> tzinfo:
    """A time zone of an `at()` or cron frequency: IANA name with `/`, `GMT+h:mm`, `GMT-h:mm` or `UTC` (ref §2.1.1)."""
    if spec.upper() == "UTC":
        return UTC
    if spec[:3].upper() == "GMT":
        m = _GMT_OFFSET.fullmatch(spec)
        if not m:
            raise _bad(f"time zone \"{spec}\" is not of the form GMT+8:00 or GMT-7:00 (hour without a leading "
                       f"zero, minutes with two digits).")
        sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3))
        # Real offsets run from GMT-12:00 to GMT+14:00; the agent accepts hours 0..14 either way.
        if hours > 14 or minutes > 59 or (hours == 14 and minutes):
            raise _bad(f"time zone offset \"{spec}\" is out of range (GMT-14:00 .. GMT+14:00).")
        offset = timedelta(hours=hours, minutes=minutes)
        return timezone(-offset if sign == "-" else offset)
    # The agent only loads names that contain a `/` (`Asia/Shanghai`, `Etc/GMT-8`) besides UTC/GMT.
    if _TZ_NAME.fullmatch(spec):
        try:
            return ZoneInfo(spec)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise _bad(f"unknown time zone \"{spec}\" (use an IANA name like Asia/Shanghai, GMT+8:00 or UTC).")


class Schedule:
    """A parsed Frequency. `next_after(ts)` is the first run time strictly after `ts` (epoch seconds), or None
    when no run is left."""

    kind: str = ""

    def __init__(self, frequency: str) -> None:
        self.frequency = frequency

    def next_after(self, ts: float) -> float | None:
        raise NotImplementedError

    def upcoming(self, ts: float, count: int) -> list[float]:
        """Up to `count` run times strictly after `ts`, in order."""
        out: list[float] = []
        cur = ts
        while len(out) < count:
            nxt = self.next_after(cur)
            if nxt is None:
                break
            out.append(nxt)
            cur = nxt
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.frequency!r})"


class RateSchedule(Schedule):
    """`rate(...)`: without an anchor the next run is `ts + interval` (pass the previous run's start time); with
    an anchor (the invocation's creation time) runs sit on the grid anchor + k*interval, k >= 1, as the agent's
    rate scheduler does."""

    kind = "rate"

    def __init__(self, frequency: str, interval: int, anchor: float | None = None) -> None:
        super().__init__(frequency)
        self.interval = interval
        self.anchor = anchor

    def next_after(self, ts: float) -> float | None:
        if self.anchor is None:
            return ts + self.interval
        if ts < self.anchor:
            return self.anchor + self.interval
        periods = math.floor((ts - self.anchor) / self.interval) + 1
        nxt = self.anchor + periods * self.interval
        return nxt if nxt > ts else nxt + self.interval


class AtSchedule(Schedule):
    """`at(...)`: a single run at `when`."""

    kind = "at"

    def __init__(self, frequency: str, when: float, tz: tzinfo) -> None:
        super().__init__(frequency)
        self.when = when
        self.tz = tz

    def next_after(self, ts: float) -> float | None:
        return self.when if self.when > ts else None


class CronSchedule(Schedule):
    """Cron expression; `expression` is the croniter form (7 fields, seconds first, year last)."""

    kind = "cron"

    def __init__(self, frequency: str, fields: list[str], tz: tzinfo, last_weekday: bool) -> None:
        super().__init__(frequency)
        self.fields = fields  # sec min hour dom month dow year, croniter syntax
        self.expression = " ".join(fields)
        self.tz = tz
        self.last_weekday = last_weekday  # day-of-month `LW` (croniter has no such syntax)

    def _next(self, fields: list[str], ts: float) -> datetime | None:
        start = datetime.fromtimestamp(ts, self.tz)
        try:
            it = croniter(" ".join(fields), start, second_at_beginning=True,
                          max_years_between_matches=_MAX_YEARS_BETWEEN_MATCHES)
            for _ in range(3):
                nxt: datetime = it.get_next(datetime)
                if nxt.timestamp() > ts:
                    return nxt
        except CroniterBadDateError:
            return None
        return None

    def _next_last_weekday(self, ts: float) -> datetime | None:
        # Month by month: pin day-of-month to that month's last weekday and ask croniter; a hit outside the month
        # means none is left in it, so move on to the next month that the month/year fields allow.
        local = datetime.fromtimestamp(ts, self.tz)
        year, month = local.year, local.month
        start = ts
        any_day = list(self.fields)
        while True:
            day = calendar.monthrange(year, month)[1]
            while calendar.weekday(year, month, day) >= 5:
                day -= 1
            fields = list(self.fields)
            fields[3] = str(day)
            hit = self._next(fields, start)
            if hit is not None and (hit.year, hit.month) == (year, month):
                return hit
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            if year > YEAR_MAX:
                return None
            month_start = datetime(year, month, 1, tzinfo=self.tz).timestamp()
            probe = self._next(any_day, max(ts, month_start - 1))
            if probe is None:
                return None
            year, month = probe.year, probe.month
            start = max(ts, datetime(year, month, 1, tzinfo=self.tz).timestamp() - 1)

    def next_after(self, ts: float) -> float | None:
        nxt = self._next_last_weekday(ts) if self.last_weekday else self._next(self.fields, ts)
        return None if nxt is None else nxt.timestamp()


# ---------------------------------------------------------------------------------------------------------------
# cron fields

# English names (not calendar.month_name, which follows the locale), short and full, as the agent accepts them.
_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
                "november", "december")
_DAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_MONTHS = {name[:3]: i for i, name in enumerate(_MONTH_NAMES, start=1)} | {
    name: i for i, name in enumerate(_MONTH_NAMES, start=1)}
_DAYS = {name[:3]: i for i, name in enumerate(_DAY_NAMES)} | {name: i for i, name in enumerate(_DAY_NAMES)}


class _Field:
    def __init__(self, label: str, lo: int, hi: int, names: dict[str, int] | None = None,
                 question: bool = False, year: bool = False, top: int | None = None) -> None:
        self.label = label
        self.lo = lo
        self.hi = hi  # largest value accepted
        self.top = hi if top is None else top  # largest value a step (`a/n`, `*/n`) reaches; also the step limit
        self.names = names or {}
        self.question = question
        self.year = year


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31, question=True)
_MONTH = _Field("month", 1, 12, names=_MONTHS)
# Numbers 1..7 (7 = Sunday, which croniter reads as 0); names map to croniter's 0..6 (SUN = 0) unchecked.
_DOW = _Field("day-of-week", 1, 7, names=_DAYS, question=True, top=6)
_YEAR = _Field("year", YEAR_MIN, YEAR_MAX, question=True, year=True)

_VALUE = r"[0-9]+|[a-z]+"
_ITEM = re.compile(rf"(?P<a>{_VALUE}|\*)(?:-(?P<b>{_VALUE}))?(?:/(?P<step>[0-9]+))?")


def _value(token: str, field: _Field, whole: str) -> int:
    if token.isdigit():
        if field.year:
            if len(token) != 4:
                raise _bad(f"year \"{token}\" in \"{whole}\" must have 4 digits.")
        elif len(token) > 2:
            raise _bad(f"{field.label} value \"{token}\" in \"{whole}\" has more than one leading zero.")
        number = int(token)
        if not field.lo <= number <= field.hi:
            raise _bad(f"{field.label} value {number} in \"{whole}\" is out of range ({field.lo}-{field.hi}).")
    elif token in field.names:
        number = field.names[token]
    else:
        raise _bad(f"\"{token}\" is not a valid {field.label} value in \"{whole}\".")
    return number


def _item(item: str, field: _Field, whole: str) -> str:
    m = _ITEM.fullmatch(item)
    if not m:
        raise _bad(f"\"{item}\" is not valid in the {field.label} field \"{whole}\".")
    a, b, step = m.group("a"), m.group("b"), m.group("step")
    if a == "*":
        if b is not None:
            raise _bad(f"\"{item}\" is not valid in the {field.label} field \"{whole}\".")
        text = "*"
    else:
        text = str(_value(a, field, whole))
        if b is not None:
            text += f"-{_value(b, field, whole)}"
    if step is not None:
        n = int(step)
        if n < 1 or (not field.year and n > field.top):
            raise _bad(f"step \"/{step}\" in the {field.label} field \"{whole}\" is out of range (1-{field.top}).")
        if b is None and a != "*":
            text += f"-{field.top}"  # `a/n` = from a to the field's maximum
        text += f"/{n}"
    return text


def _field(text: str, field: _Field) -> str:
    whole = text
    low = text.lower()
    if low in ("*", "?"):
        if low == "?" and not field.question:
            raise _bad(f"\"?\" is only allowed in the day-of-month and day-of-week fields, not in the {field.label}.")
        return "*"
    items = low.split(",")
    out: list[str] = []
    for item in items:
        if not item:
            raise _bad(f"empty list item in the {field.label} field \"{whole}\".")
        if item == "?":
            raise _bad(f"\"?\" cannot be combined with other values in the {field.label} field \"{whole}\".")
        if field is _DOM and item == "l":
            out.append("l")
        elif field is _DOM and item.endswith("w") and item[:-1].isdigit():
            if len(items) > 1:
                raise _bad(f"\"W\" needs a single day, not a list, in the day-of-month field \"{whole}\".")
            out.append(f"{_value(item[:-1], field, whole)}w")
        elif field is _DOW and item.endswith("l") and len(item) > 1:
            out.append(f"l{_value(item[:-1], field, whole)}")
        elif field is _DOW and "#" in item:
            day, _, nth = item.partition("#")
            if not nth.isdigit() or not 1 <= int(nth) <= 5:
                raise _bad(f"\"#{nth}\" in the day-of-week field \"{whole}\" must be #1 to #5.")
            out.append(f"{_value(day, field, whole)}#{int(nth)}")
        else:
            out.append(_item(item, field, whole))
    return ",".join(out)


def _looks_like_year(text: str) -> bool:
    return text[:1].isdigit() or text[:1] in ("*", "?")


def _parse_cron(frequency: str, timeout: int, now: float) -> CronSchedule:
    parts = frequency.split()
    if not 6 <= len(parts) <= 8:
        raise _bad(f"a cron expression has 6 to 8 fields (seconds minutes hours day-of-month month day-of-week "
                   f"[year] [time zone]), got {len(parts)}.")
    year = "*"
    tz: tzinfo = UTC  # no tz: the instance's system time zone, which is UTC on sandbox instances
    if len(parts) == 8:
        year, tz = parts[6], parse_timezone(parts[7])
    elif len(parts) == 7:
        if _looks_like_year(parts[6]):
            year = parts[6]
        else:
            tz = parse_timezone(parts[6])
    last_weekday = parts[3].lower() == "lw"
    if last_weekday and parts[5] not in ("*", "?"):
        raise _bad("\"LW\" in the day-of-month field needs \"?\" or \"*\" in the day-of-week field.")
    fields = [
        _field(parts[0], _SECOND),
        _field(parts[1], _MINUTE),
        _field(parts[2], _HOUR),
        "*" if last_weekday else _field(parts[3], _DOM),
        _field(parts[4], _MONTH),
        _field(parts[5], _DOW),
        _field(year, _YEAR),
    ]
    try:
        croniter(" ".join(fields), datetime.fromtimestamp(now, tz), second_at_beginning=True)
    except (CroniterError, ValueError) as exc:
        raise _bad(f"cron expression \"{frequency}\" cannot be parsed ({exc}).") from exc
    schedule = CronSchedule(frequency, fields, tz, last_weekday)
    minimum = max(CRON_MIN_INTERVAL, timeout)
    runs = schedule.upcoming(now, CRON_INTERVAL_SAMPLE)
    for first, second in itertools.pairwise(runs):
        if second - first < minimum:
            raise _bad(f"cron expression \"{frequency}\" runs {second - first:g} seconds apart; runs must be at "
                       f"least {minimum} seconds apart (10 seconds and not less than Timeout {timeout}).")
    return schedule


def _parse_rate(frequency: str, timeout: int, anchor: float | None) -> RateSchedule:
    m = _RATE.fullmatch(frequency)
    if not m:
        raise _bad(f"\"{frequency}\" is not of the form rate(<number><s|m|h|d>), e.g. rate(5m).")
    value, unit = int(m.group(1)), m.group(2).lower()
    interval = value * _UNITS[unit]
    if not RATE_MIN_SECONDS <= interval <= RATE_MAX_SECONDS:
        raise _bad(f"the interval of \"{frequency}\" ({interval} seconds) must be between 60 seconds and 7 days.")
    if interval <= timeout:
        raise _bad(f"the interval of \"{frequency}\" ({interval} seconds) must be greater than Timeout "
                   f"({timeout} seconds).")
    return RateSchedule(frequency, interval, anchor)


def _parse_at(frequency: str) -> AtSchedule:
    m = _AT.fullmatch(frequency)
    if not m:
        raise _bad(f"\"{frequency}\" is not of the form at(yyyy-MM-dd HH:mm:ss <time zone>), "
                   f"e.g. at(2026-12-01 10:00:00 GMT+8:00).")
    try:
        local = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise _bad(f"\"{m.group(1)}\" is not a valid date and time.") from exc
    tz = parse_timezone(m.group(2)) if m.group(2) else UTC
    return AtSchedule(frequency, local.replace(tzinfo=tz).timestamp(), tz)


def parse_frequency(frequency: str, timeout: int, *, now: float | None = None,
                    anchor: float | None = None) -> Schedule:
    """Parse a Frequency. `timeout` is the run's Timeout in seconds.

    `now` (default: the current time) is where the cron minimum-interval check looks at the upcoming runs.
    `anchor` (optional, rate only) pins rate runs to anchor + k*interval; pass the invocation's creation time.
    An at() time or cron years already past are not errors here: next_after() then returns None."""
    text = (frequency or "").strip()
    if not text:
        raise _bad("the value is empty.")
    low = text.lower()
    if low.startswith("rate"):
        return _parse_rate(text, timeout, anchor)
    if low.startswith("at"):
        return _parse_at(text)
    return _parse_cron(text, timeout, time.time() if now is None else now)
