# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Rolling runs, the pure part: how many instances may run at once, how many may fail, the canary, and which
instances start next (no API call here; ``_runner.CommandRunner.run_rolling`` acts on it).

- ``parse_amount(value, option, minimum)``: ``5`` or ``'5'`` (instances) or ``'10%'`` (of the targets), checked
  before any API call; ``Amount.of(total)`` turns it into a count.
- ``RollingPlan``: the targets cut into fixed start groups (``block_size``: a fifth of the window, at least 1, at
  most 100), the canary's groups first. ``startable()`` hands out the next groups while they fit in the window,
  the canary has not failed and no more than ``max_errors`` instances failed; ``record()`` takes each instance's
  final status as the poller reports it. Because the groups are fixed, every start call has the same instances
  (and so the same ClientToken) whatever the timing: a retried call, and a rerun with a fixed ``client_token``,
  repeat it exactly.
- ``WindowSchedule``: the poll schedule counted from the last start, so the window refills promptly however long
  the whole run has lasted.
- ``rolling_message``: how many ran, failed, were stopped and never started.
"""

from __future__ import annotations

import math
import re

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import invalid
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._results import describe_failure
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import SUCCESS

BLOCK_DIVISOR = 5        # a start group is a fifth of the window: at most 20% of it waits for a group to fill
MAX_BLOCK = 100          # RunCommand/InvokeCommand take at most 100 instances per call (_batching.BATCH_LIMITS)
ROLLING_OPTIONS = ('max_concurrency', 'max_errors', 'canary')

HALT_MAX_ERRORS = 'max_errors'
HALT_CANARY = 'canary'
HALT_TIMEOUT = 'timeout'
HALT_ERROR = 'error'

_PERCENT = re.compile(r'^\s*(\d+)\s*%\s*$')
_COUNT = re.compile(r'^\s*(-?\d+)\s*$')


class Amount(object):
    """A number of instances, or a percentage of the targets (``percent``)."""

    def __init__(self, value, percent=False):
        self.value = int(value)
        self.percent = bool(percent)

    def of(self, total, round_up=True):
        """The count for ``total`` targets: a percentage rounds up (``round_up``) or down."""
        if not self.percent:
            return self.value
        exact = total * self.value / 100.0
        return int(math.ceil(exact)) if round_up else int(math.floor(exact))

    def __repr__(self):
        return '%d%%' % self.value if self.percent else str(self.value)

    def __eq__(self, other):
        return isinstance(other, Amount) and (self.value, self.percent) == (other.value, other.percent)

    def __ne__(self, other):
        return not self == other


def parse_amount(value, option, minimum):
    """None, or the ``Amount`` of ``value``: a whole number of at least ``minimum`` (an int or its text) or a
    percentage from ``minimum``% to 100%. Raises the configuration error naming ``option`` and the limit."""
    if value is None:
        return None
    number = None
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value) if value.is_integer() else None
    else:
        text = str(value)
        percent = _PERCENT.match(text)
        if percent:
            share = int(percent.group(1))
            if not minimum <= share <= 100:
                raise invalid('%s must be a percentage from %d%% to 100%%, not %s' % (option, minimum, text.strip()))
            return Amount(share, percent=True)
        count = _COUNT.match(text)
        number = int(count.group(1)) if count else None
    if number is None:
        raise invalid('%s must be a whole number of instances or a percentage of them such as 10%%, not %r'
                      % (option, value))
    if number < minimum:
        raise invalid('%s must be at least %d, not %d' % (option, minimum, number))
    return Amount(number)


def check_rolling(params):
    """The rolling options of a task (``max_concurrency``, ``max_errors``, ``canary``, ``stop_on_error``, with
    ``repeat_mode`` and ``wait``) checked before any API call: {option: Amount or None}, or None when the task
    runs without them. Raises the configuration error naming the option."""
    given = [o for o in ROLLING_OPTIONS if params.get(o) is not None]
    if not given:
        if params.get('stop_on_error'):
            raise invalid('stop_on_error stops a rolling run when it halts: it needs max_errors or canary')
        return None
    if params.get('repeat_mode', 'Once') != 'Once':
        raise invalid('a rolling run (%s) only works with repeat_mode=Once (repeat_mode is %s): a scheduled run '
                      'starts on every instance at its time' % (', '.join(given), params['repeat_mode']))
    if not params.get('wait', True):
        raise invalid('a rolling run (%s) needs wait=true: the task starts the next instances as earlier ones '
                      'finish' % ', '.join(given))
    amounts = dict(max_concurrency=parse_amount(params.get('max_concurrency'), 'max_concurrency', 1),
                   max_errors=parse_amount(params.get('max_errors'), 'max_errors', 0),
                   canary=parse_amount(params.get('canary'), 'canary', 1))
    if params.get('stop_on_error') and amounts['max_errors'] is None and amounts['canary'] is None:
        raise invalid('stop_on_error stops a rolling run when it halts: it needs max_errors or canary')
    return amounts


def block_size(window):
    """Instances per start group for a window of ``window``: a fifth of it, at least 1, at most 100."""
    return max(1, min(MAX_BLOCK, int(math.ceil(window / float(BLOCK_DIVISOR)))))


def _groups(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


class RollingPlan(object):
    """Which of ``targets`` (in order) start when. ``max_concurrency``/``max_errors``/``canary``: ``Amount`` or
    None (no window: every instance at once; no error limit; no canary).

    Resolved: ``window`` (a percentage rounds up, at least 1), ``max_errors`` (rounds down; None: no limit; the
    run halts once MORE than this many failed), ``canary`` (rounds up; 0: none), ``block``. A failure is any
    final status but ``Success`` of an instance this run did not stop itself (``mark_stopped``).
    """

    def __init__(self, targets, max_concurrency=None, max_errors=None, canary=None, stop_on_error=False):
        self.targets = list(targets)
        total = len(self.targets)
        self.window = max(1, max_concurrency.of(total)) if max_concurrency is not None else max(1, total)
        self.max_errors = max_errors.of(total, round_up=False) if max_errors is not None else None
        self.canary = min(total, max(1, canary.of(total))) if canary is not None else 0
        self.stop_on_error = bool(stop_on_error)
        self.block = block_size(self.window)
        self.canary_ids = self.targets[:self.canary]
        canary_groups = _groups(self.canary_ids, self.block)
        self.groups = canary_groups + _groups(self.targets[self.canary:], self.block)
        self.canary_groups = len(canary_groups)
        self.next_group = 0
        self.started = []           # instance IDs, in start order
        self.final = {}             # instance ID -> final status
        self.failed = []            # instance IDs, in the order their failure was seen
        self.stopped = set()        # instance IDs this run stopped
        self.halted = None          # HALT_* once nothing more may start
        self.halt_detail = None     # for HALT_TIMEOUT / HALT_ERROR: the reason in words

    # -- progress -----------------------------------------------------------------------------------------------
    def running(self):
        return [i for i in self.started if i not in self.final]

    def canary_passed(self):
        return all(self.final.get(i) == SUCCESS for i in self.canary_ids)

    def startable(self):
        """The next groups to start now (lists of instance IDs), marked as started; [] when none fits, the canary
        is still running, or the run halted."""
        out = []
        running = len(self.running())
        while self.halted is None and self.next_group < len(self.groups):
            group = self.groups[self.next_group]
            if self.next_group == self.canary_groups and self.canary and not self.canary_passed():
                break
            if running + len(group) > self.window:
                break
            out.append(group)
            self.started.extend(group)
            running += len(group)
            self.next_group += 1
        return out

    def mark_stopped(self, instance_ids):
        """Instances this run stopped (stop_on_error, stop_on_timeout): their end is not counted as a failure."""
        self.stopped.update(instance_ids)

    def record(self, instance_id, status):
        """The final status of a started instance (a second report of the same instance changes nothing)."""
        if instance_id in self.final or instance_id not in self.started:
            return
        self.final[instance_id] = status
        if status == SUCCESS or instance_id in self.stopped:
            return
        self.failed.append(instance_id)
        if self.halted is not None:
            return
        if self.max_errors is not None and len(self.failed) > self.max_errors:
            self.halted = HALT_MAX_ERRORS
        elif instance_id in self.canary_ids:
            self.halted = HALT_CANARY

    def halt(self, why, detail):
        """Nothing more starts (``HALT_TIMEOUT``, ``HALT_ERROR``); ``detail``: the reason in words."""
        if self.halted is None:
            self.halted, self.halt_detail = why, detail

    @property
    def finished(self):
        """True when nothing runs and nothing more will start."""
        return not self.running() and (self.halted is not None or self.next_group >= len(self.groups))

    def stopped_instances(self):
        """The started instances this run stopped that did not end in Success (a stop can come too late)."""
        return [i for i in self.started if i in self.stopped and self.final.get(i) != SUCCESS]

    def not_started(self):
        started = set(self.started)
        return [i for i in self.targets if i not in started]

    def skip_reason(self):
        """Why the instances that never started did not (None when all started)."""
        if self.halted == HALT_MAX_ERRORS:
            return ('not started: %d instances failed, more than max_errors (%d), so the rolling run halted'
                    % (len(self.failed), self.max_errors))
        if self.halted == HALT_CANARY:
            return 'not started: the canary (the first %d instances) did not succeed on %s' % (
                self.canary, ', '.join(i for i in self.failed if i in self.canary_ids))
        if self.halted is not None:
            return 'not started: %s' % self.halt_detail
        return None

    # -- check mode ---------------------------------------------------------------------------------------------
    def waves(self):
        """The instances in the waves the run would start if every instance took as long: whole start groups, as
        many as fit in the window (as ``startable`` starts them), the canary's first and on their own."""
        waves, wave = [], []
        for index, group in enumerate(self.groups):
            if wave and (len(wave) + len(group) > self.window or (self.canary and index == self.canary_groups)):
                waves.append(wave)
                wave = []
            wave = wave + group
        return waves + ([wave] if wave else [])

    def settings(self):
        """What the run resolved its options to (a task result's ``rolling``)."""
        return {'max_concurrency': self.window, 'max_errors': self.max_errors, 'canary': self.canary,
                'stop_on_error': self.stop_on_error, 'group_size': self.block}

    def report(self):
        """``settings()`` and how it went: started, failed, stopped, never started, halted (reason or None)."""
        return dict(self.settings(), started=len(self.started), failed=len(self.failed),
                    stopped=len(self.stopped_instances()),
                    not_started=len(self.not_started()), halted=self.halted)


class WindowSchedule(object):
    """A poll schedule (``_poller.PollSchedule`` or any object with ``next_delay``) counted from the last start
    (``restart(elapsed)``): the instances that started last are polled as the schedule polls a new run."""

    def __init__(self, base):
        self.base = base
        self.since = 0.0

    def restart(self, elapsed):
        self.since = float(elapsed)

    def next_delay(self, elapsed, polls):
        return self.base.next_delay(max(0.0, elapsed - self.since), polls)


def rolling_message(plan, instances):
    """The task's message when a rolling run halted: why, and how many ran, failed, were stopped and never
    started; then the first failures (``instances``: the run's entries)."""
    report = plan.report()
    if plan.halted == HALT_MAX_ERRORS:
        why = 'more than max_errors (%d) instances failed' % plan.max_errors
    elif plan.halted == HALT_CANARY:
        why = 'the canary (the first %d instances) did not succeed' % plan.canary
    else:
        why = plan.halt_detail or 'it halted'
    by_id = dict((e['instance_id'], e) for e in instances)
    failures = [describe_failure(by_id[i]) for i in plan.failed[:5] if i in by_id]
    return ('rolling run halted, %s: %d of %d instances ran, %d failed, %d were stopped, %d never started%s'
            % (why, report['started'], len(plan.targets), report['failed'], report['stopped'],
               report['not_started'], ('; ' + ', '.join(failures)) if failures else ''))
