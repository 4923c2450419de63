# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""The ``Frequency`` of scheduled runs, checked as fully as the service checks it (reference section 2.1.1), so
that check mode and a re-run that replaces a schedule find a bad value before anything changes.

- ``rate(<n><s|m|h|d>)``: 60 seconds to 7 days, longer than the run's timeout;
- ``at(yyyy-MM-dd HH:mm:ss [tz])``: a real date and time;
- ``<sec> <min> <hour> <day-of-month> <month> <day-of-week> [<year>] [<tz>]``: Quartz-like fields with their
  ranges (day of week 1-7 or SUN-SAT, month 1-12 or JAN-DEC, year 1970-2099; ``?``, ``L``, ``W``, ``#``);
- time zones: an IANA name (``Asia/Shanghai``), ``GMT+8:00`` / ``GMT-7:00`` (no leading zero in the hour) or
  ``UTC``; a bare ``GMT`` is refused, as the service refuses it.
"""

from __future__ import annotations

import re
from datetime import datetime

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError

RATE_MIN = 60
RATE_MAX = 7 * 24 * 3600
_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400}
_RATE = re.compile(r'^rate\(\s*(\d+)\s*([smhd])\s*\)$', re.IGNORECASE)
_AT = re.compile(r'^at\(\s*(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\s+(\S+))?\s*\)$', re.IGNORECASE)
_GMT = re.compile(r'^GMT([+-])(\d{1,2}):(\d{2})$', re.IGNORECASE)
_IANA = re.compile(r'^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)+$')
_MONTHS = ('JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC')
_DAYS = ('SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT')
# name, lowest, highest, names for 1..n
_CRON_FIELDS = (
    ('seconds', 0, 59, None),
    ('minutes', 0, 59, None),
    ('hours', 0, 23, None),
    ('day-of-month', 1, 31, None),
    ('month', 1, 12, _MONTHS),
    ('day-of-week', 1, 7, _DAYS),
)
_YEAR = ('year', 1970, 2099, None)


def _refuse(frequency, why):
    return CloudAssistantError('frequency %r: %s' % (frequency, why), kind='config')


def _zone_known(tz):
    """Whether this machine knows ``tz`` as an IANA name; None when it cannot tell (Python < 3.9, or no time zone
    data on the host), and then only the form is checked. The full list is read only for a name not found."""
    try:
        import zoneinfo
    except ImportError:
        return None
    try:
        zoneinfo.ZoneInfo(tz)
        return True
    # not found, or not a valid key
    except Exception:  # pylint: disable=broad-except
        pass
    try:
        return False if zoneinfo.available_timezones() else None
    except Exception:  # pylint: disable=broad-except
        return None


def check_time_zone(tz, frequency):
    if tz.upper() == 'UTC':
        return
    if tz.upper() == 'GMT':
        raise _refuse(frequency, 'the time zone GMT needs an offset, for example GMT+8:00 (or use UTC)')
    match = _GMT.match(tz)
    if match:
        hours, minutes = match.group(2), int(match.group(3))
        if len(hours) == 2 and hours.startswith('0'):
            raise _refuse(frequency, 'write the offset hour without a leading zero (GMT%s%d:%s, not %s)'
                          % (match.group(1), int(hours), match.group(3), tz))
        if int(hours) > 14 or minutes > 59:
            raise _refuse(frequency, 'the offset of %s is out of range (GMT-12:00 to GMT+14:00)' % tz)
        return
    if not _IANA.match(tz) or _zone_known(tz) is False:
        raise _refuse(frequency, 'unknown time zone %r (use an IANA name such as Asia/Shanghai, GMT+8:00 or UTC)'
                      % tz)


def _number(text, field, frequency):
    name, low, high, names = field
    if names is not None and text.upper() in names:
        return names.index(text.upper()) + 1
    if not text.isdigit():
        raise _refuse(frequency, 'the %s field has %r, which is not a number%s'
                      % (name, text, ' or a name (%s-%s)' % (names[0], names[-1]) if names else ''))
    value = int(text)
    if not low <= value <= high:
        raise _refuse(frequency, 'the %s field has %d, outside %d-%d' % (name, value, low, high))
    return value


def _check_cron_part(part, field, frequency):
    name = field[0]
    if name == 'day-of-month' and (part in ('L', 'LW') or re.match(r'^L-\d+$', part)):
        return
    if name == 'day-of-month' and part.endswith('W'):
        _number(part[:-1], field, frequency)
        return
    if name == 'day-of-week':
        if part == 'L':
            return
        if part.endswith('L'):
            _number(part[:-1], field, frequency)
            return
        if '#' in part:
            day, nth = part.split('#', 1)
            _number(day, field, frequency)
            if not nth.isdigit() or not 1 <= int(nth) <= 5:
                raise _refuse(frequency, 'in %r the week of the month must be 1-5' % part)
            return
    base, step = part, None
    if '/' in part:
        base, step = part.split('/', 1)
        if not step.isdigit() or int(step) < 1:
            raise _refuse(frequency, 'the %s field has the step %r, which is not a positive number' % (name, step))
    if base == '*':
        return
    ends = base.split('-', 1)
    numbers = [_number(end, field, frequency) for end in ends]
    if len(numbers) == 2 and numbers[0] > numbers[1]:
        raise _refuse(frequency, 'the %s field has the range %r, which runs backwards' % (name, base))


def _check_cron_field(value, field, frequency):
    if value == '?':
        if field[0] not in ('day-of-month', 'day-of-week'):
            raise _refuse(frequency, '? is only allowed in the day-of-month and day-of-week fields')
        return
    for part in value.split(','):
        if not part:
            raise _refuse(frequency, 'the %s field %r has an empty list entry' % (field[0], value))
        _check_cron_part(part, field, frequency)


def check_frequency(frequency, timeout=None):
    """Raise ``CloudAssistantError`` (naming the rule) unless ``frequency`` is a schedule the service accepts.
    ``timeout``: the run's timeout in seconds, when known (a rate must be longer)."""
    value = (frequency or '').strip()
    if not value:
        raise CloudAssistantError('frequency must not be empty', kind='config')
    lower = value.lower()
    if lower.startswith('rate('):
        match = _RATE.match(value)
        if not match:
            raise _refuse(value, 'malformed: use rate(<number><s|m|h|d>), for example rate(5m)')
        seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]
        if not RATE_MIN <= seconds <= RATE_MAX:
            raise _refuse(value, 'the interval must be between 60 seconds and 7 days')
        if timeout is not None and seconds <= timeout:
            raise _refuse(value, 'the interval (%d s) must be longer than timeout (%d s)' % (seconds, timeout))
        return
    if lower.startswith('at('):
        match = _AT.match(value)
        if not match:
            raise _refuse(value, 'malformed: use at(yyyy-MM-dd HH:mm:ss[ <time zone>]), for example '
                                 'at(2030-01-01 10:00:00 Asia/Shanghai)')
        try:
            datetime.strptime(match.group(1), '%Y-%m-%d %H:%M:%S')
        except ValueError:
            raise _refuse(value, '%s is not a valid date and time' % match.group(1))
        if match.group(2):
            check_time_zone(match.group(2), value)
        return
    fields = value.split()
    if len(fields) not in (6, 7, 8):
        raise _refuse(value, 'malformed: a cron expression has 6 fields (seconds minutes hours day-of-month month '
                             'day-of-week), optionally followed by a year and a time zone; or use rate(...) / at(...)')
    tz = None
    if len(fields) == 8 or (len(fields) == 7 and not re.match(r'^[0-9*?/,\-]+$', fields[6])):
        tz = fields.pop()
    for field, text in zip(_CRON_FIELDS + (_YEAR,), fields):
        _check_cron_field(text, field, value)
    if tz is not None:
        check_time_zone(tz, value)
