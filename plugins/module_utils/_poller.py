# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Waiting for anything the API reports on: one poll loop with a schedule and a deadline.

``poll(fetch, finished, deadline)`` calls ``fetch()`` after each delay of the schedule until ``finished(value)``
or the deadline; invocations (``_invocations.wait_for_invocations``), file deliveries and agent status all wait
through it. An API error raised by ``fetch`` ends the wait; it is returned with the last value seen, so the
caller can still report what it knows (the IDs it already has, the last statuses).

The modules' ``wait_timeout`` shares its numbers here: ``WAIT_MARGIN`` (a default ``wait_timeout`` is the run's
timeout plus this), ``RETRY_GRACE`` (API retries may run this long past the deadline: the last poll, the final
read) and ``MAX_WAIT_TIMEOUT`` (the longest run, ``_limits.TIMEOUT_MAX``, plus the margin), checked by
``check_wait_timeout``.
"""

from __future__ import annotations

import time

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import TIMEOUT_MAX, invalid

WAIT_MARGIN = 120                            # default wait_timeout = the run's timeout + this
RETRY_GRACE = 5                              # API retries may run this long past the deadline
MAX_WAIT_TIMEOUT = TIMEOUT_MAX + WAIT_MARGIN  # 86,520 s: the longest run and the margin


def check_wait_timeout(value, option='wait_timeout'):
    """Raise the configuration error naming ``option`` unless 1 <= ``value`` <= ``MAX_WAIT_TIMEOUT``."""
    if value is not None and not 1 <= value <= MAX_WAIT_TIMEOUT:
        raise invalid('%s must be between 1 and %d seconds, not %d' % (option, MAX_WAIT_TIMEOUT, value))


class PollSchedule(object):
    """Delay before the next poll: ``max(floor, min(cap, ratio * elapsed))``.

    With the defaults (0.2 s, 10%, 5 s) the first two seconds are polled every 0.2 s (short commands are seen as
    soon as they end), a run that ends after T seconds is seen at most about 10% of T late, and anything longer
    than 50 s is polled every 5 s: a 2 s command costs about 11 polls, a 60 s one about 45, a 10-minute one about
    150. The floor keeps a wait at or below 5 calls per second whatever the caller asks for.

    ``first`` (optional): the delay before the first poll instead, for a wait whose end can be foreseen (the
    connection plugin's runs: from how long the same module ran before); ``second`` (optional): the delay before
    the second poll, after a first one that came a little too soon.

    Any object with ``next_delay(elapsed, polls)`` is a schedule: the benchmarks plug in the vendor sample's fixed
    2 s and its 1, 2, 4, 8 s backoff.
    """

    def __init__(self, floor=0.2, ratio=0.1, cap=5.0, first=None, second=None):
        if floor <= 0 or cap < floor or ratio < 0 or any(d is not None and not 0 < d <= cap for d in (first, second)):
            raise ValueError('PollSchedule needs 0 < floor <= cap, ratio >= 0 and 0 < first, second <= cap')
        self.floor = float(floor)
        self.ratio = float(ratio)
        self.cap = float(cap)
        self.first = None if first is None else float(first)
        self.second = None if second is None else float(second)

    def next_delay(self, elapsed, polls):
        if polls == 0 and self.first is not None:
            return self.first
        if polls == 1 and self.second is not None:
            return self.second
        return max(self.floor, min(self.cap, self.ratio * max(0.0, float(elapsed))))

    def __repr__(self):
        return 'PollSchedule(floor=%r, ratio=%r, cap=%r, first=%r, second=%r)' % (
            self.floor, self.ratio, self.cap, self.first, self.second)


class PollOutcome(object):
    """``value``: what ``fetch`` returned last (None before the first answer); ``done``: ``finished(value)`` held;
    ``timed_out``: the deadline passed first; ``error``: the ``CloudAssistantError`` that ended the wait, or None;
    ``polls``: how many times ``fetch`` was called."""

    def __init__(self, value, done, polls, error=None):
        self.value = value
        self.done = done
        self.polls = polls
        self.error = error
        self.timed_out = not done and error is None


def poll(fetch, finished, deadline, schedule=None, clock=time.monotonic, sleep=time.sleep, started=None):
    """Sleep ``schedule.next_delay(elapsed, polls)`` (cut short by ``deadline``, a ``clock()`` value), call
    ``fetch()``, and repeat until ``finished(value)`` is true or the deadline has passed. A last ``fetch`` is made
    at the deadline. ``started`` (default: now) is where ``elapsed`` counts from."""
    schedule = schedule if schedule is not None else PollSchedule()
    start = clock() if started is None else started
    value = None
    polls = 0
    while True:
        now = clock()
        remaining = deadline - now
        if remaining <= 0:
            return PollOutcome(value, False, polls)
        sleep(max(0.0, min(schedule.next_delay(now - start, polls), remaining)))
        try:
            value = fetch()
        except CloudAssistantError as exc:
            return PollOutcome(value, False, polls, error=exc)
        polls += 1
        if finished(value):
            return PollOutcome(value, True, polls)
