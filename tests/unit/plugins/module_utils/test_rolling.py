# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pure planning of rolling runs: amounts and percentages, the window, max_errors, the canary."""

from __future__ import annotations

import random

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import PollSchedule
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._results import instance_entry
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._rolling import (
    HALT_CANARY,
    HALT_MAX_ERRORS,
    HALT_TIMEOUT,
    Amount,
    RollingPlan,
    WindowSchedule,
    block_size,
    check_rolling,
    parse_amount,
    rolling_message,
)

IDS = ['i-%03d' % n for n in range(20)]


def params(**kw):
    base = dict(max_concurrency=None, max_errors=None, canary=None, stop_on_error=False, repeat_mode='Once', wait=True)
    base.update(kw)
    return base


@pytest.mark.parametrize('value, expected', [
    (5, Amount(5)), ('5', Amount(5)), (' 7 ', Amount(7)), (3.0, Amount(3)), ('10%', Amount(10, True)),
    ('100%', Amount(100, True)), (' 25 % ', Amount(25, True)), (None, None),
])
def test_parse_amount_accepts_counts_and_percentages(value, expected):
    assert parse_amount(value, 'max_concurrency', 1) == expected


@pytest.mark.parametrize('value, minimum, fragment', [
    (0, 1, 'max_x must be at least 1, not 0'),
    ('-2', 0, 'max_x must be at least 0, not -2'),
    ('0%', 1, 'max_x must be a percentage from 1% to 100%, not 0%'),
    ('101%', 0, 'max_x must be a percentage from 0% to 100%, not 101%'),
    ('abc', 1, "max_x must be a whole number of instances or a percentage of them such as 10%, not 'abc'"),
    ('1.5%', 1, 'not'), (2.5, 1, 'not 2.5'), (True, 1, 'not True'), ([], 1, 'not []'),
])
def test_parse_amount_refuses_with_the_option_and_the_limit(value, minimum, fragment):
    with pytest.raises(CloudAssistantError) as info:
        parse_amount(value, 'max_x', minimum)
    assert info.value.kind == 'config'
    assert fragment in info.value.msg


def test_amount_rounding():
    assert Amount(10, True).of(7) == 1           # 0.7 rounds up
    assert Amount(10, True).of(7, round_up=False) == 0
    assert Amount(25, True).of(8) == 2
    assert Amount(3).of(1000) == 3
    assert repr(Amount(5, True)) == '5%' and repr(Amount(5)) == '5'
    assert Amount(5) != Amount(5, True)


def test_check_rolling_none_without_options():
    assert check_rolling(params()) is None


@pytest.mark.parametrize('kw, fragment', [
    (dict(max_concurrency=2, repeat_mode='Period'), 'only works with repeat_mode=Once (repeat_mode is Period)'),
    (dict(canary=1, repeat_mode='EveryReboot'), 'a rolling run (canary) only works with repeat_mode=Once'),
    (dict(max_errors=1, canary=2, wait=False), 'a rolling run (max_errors, canary) needs wait=true'),
    (dict(stop_on_error=True), 'stop_on_error stops a rolling run when it halts: it needs max_errors or canary'),
    (dict(stop_on_error=True, max_concurrency=3), 'it needs max_errors or canary'),
    (dict(max_concurrency='0%'), 'max_concurrency must be a percentage from 1% to 100%'),
    (dict(max_errors=-1), 'max_errors must be at least 0'),
    (dict(canary=0), 'canary must be at least 1'),
])
def test_check_rolling_refuses(kw, fragment):
    with pytest.raises(CloudAssistantError) as info:
        check_rolling(params(**kw))
    assert fragment in info.value.msg


def test_check_rolling_returns_amounts():
    out = check_rolling(params(max_concurrency='50%', max_errors=0, canary=2, stop_on_error=True))
    assert out == dict(max_concurrency=Amount(50, True), max_errors=Amount(0), canary=Amount(2))


@pytest.mark.parametrize('window, size', [(1, 1), (4, 1), (5, 1), (6, 2), (50, 10), (499, 100), (10000, 100)])
def test_block_size(window, size):
    assert block_size(window) == size


def test_resolved_settings_and_percentages():
    plan = RollingPlan(IDS[:8], max_concurrency=Amount(25, True), max_errors=Amount(25, True), canary=Amount(10, True))
    assert plan.settings() == dict(max_concurrency=2, max_errors=2, canary=1, stop_on_error=False, group_size=1)
    plan = RollingPlan(IDS[:3], max_concurrency=Amount(1, True), max_errors=Amount(10, True))
    assert (plan.window, plan.max_errors, plan.canary) == (1, 0, 0)
    plan = RollingPlan(IDS[:3], canary=Amount(10))
    assert plan.canary == 3 and plan.window == 3


def test_no_window_starts_everything_at_once():
    plan = RollingPlan(IDS)
    assert plan.window == 20 and plan.block == 4
    assert sum(plan.startable(), []) == IDS
    assert plan.startable() == []


def finish(plan, ids, status='Success'):
    for i in ids:
        plan.record(i, status)


def test_sliding_window_refills_as_instances_finish():
    plan = RollingPlan(IDS[:10], max_concurrency=Amount(3))
    assert plan.startable() == [['i-000'], ['i-001'], ['i-002']]
    assert plan.startable() == []
    finish(plan, ['i-001'])
    assert plan.startable() == [['i-003']]
    finish(plan, ['i-000', 'i-002'])
    assert plan.startable() == [['i-004'], ['i-005']]
    assert plan.running() == ['i-003', 'i-004', 'i-005']
    assert not plan.finished


def test_groups_are_fixed_whatever_the_timing():
    """The same groups (so the same ClientTokens) in any order of finishing."""
    seen = []
    for seed in range(5):
        rng = random.Random(seed)
        plan = RollingPlan(IDS, max_concurrency=Amount(10))
        groups = plan.startable()
        while not plan.finished:
            running = plan.running()
            finish(plan, rng.sample(running, rng.randint(1, len(running))))
            groups += plan.startable()
            assert len(plan.running()) <= 10
        seen.append(groups)
    assert all(g == seen[0] for g in seen)
    assert seen[0] == [IDS[i:i + 2] for i in range(0, 20, 2)]


def test_window_is_never_exceeded_randomised():
    for seed in range(50):
        rng = random.Random(seed)
        total = rng.randint(1, 60)
        window = rng.randint(1, 25)
        plan = RollingPlan(['i-%d' % n for n in range(total)], max_concurrency=Amount(window))
        plan.startable()
        steps = 0
        while not plan.finished:
            assert 0 < len(plan.running()) <= window
            finish(plan, rng.sample(plan.running(), 1))
            plan.startable()
            steps += 1
        assert steps == total and not plan.not_started()


def test_max_errors_halts_once_more_than_the_limit_failed():
    plan = RollingPlan(IDS[:10], max_concurrency=Amount(2), max_errors=Amount(1))
    plan.startable()
    finish(plan, ['i-000'], 'Failed')
    assert plan.halted is None
    assert plan.startable() == [['i-002']]
    finish(plan, ['i-001'], 'Timeout')
    assert plan.halted == HALT_MAX_ERRORS
    assert plan.startable() == []
    assert not plan.finished      # i-002 still runs
    finish(plan, ['i-002'])
    assert plan.finished
    assert plan.not_started() == IDS[3:10]
    assert plan.report() == dict(plan.settings(), started=3, failed=2, stopped=0, not_started=7, halted='max_errors')
    assert 'more than max_errors (1)' in plan.skip_reason()


def test_max_errors_zero_halts_on_the_first_failure():
    plan = RollingPlan(IDS[:4], max_concurrency=Amount(4), max_errors=Amount(0))
    plan.startable()
    finish(plan, ['i-003'], 'Aborted')
    assert plan.halted == HALT_MAX_ERRORS


def test_rejected_counts_as_failure_and_stopped_does_not():
    plan = RollingPlan(IDS[:6], max_concurrency=Amount(3), max_errors=Amount(0), stop_on_error=True)
    plan.startable()
    plan.mark_stopped(['i-001'])
    finish(plan, ['i-001'], 'Terminated')
    assert plan.halted is None
    finish(plan, ['i-000'], 'Rejected')
    assert plan.halted == HALT_MAX_ERRORS
    plan.mark_stopped(['i-002'])
    finish(plan, ['i-002'], 'Cancelled')
    assert plan.report()['stopped'] == 2 and plan.report()['failed'] == 1


def test_a_stop_that_came_too_late_is_not_counted_as_stopped():
    plan = RollingPlan(IDS[:2], max_concurrency=Amount(2), max_errors=Amount(0))
    plan.startable()
    plan.mark_stopped(['i-001'])
    finish(plan, ['i-001'])
    assert plan.stopped_instances() == []


def test_record_ignores_repeats_and_unknown_instances():
    plan = RollingPlan(IDS[:3], max_concurrency=Amount(1), max_errors=Amount(0))
    plan.startable()
    finish(plan, ['i-000'])
    finish(plan, ['i-000'], 'Failed')
    finish(plan, ['i-002'], 'Failed')   # not started yet: not this run's
    assert plan.failed == [] and plan.halted is None


def test_canary_runs_alone_then_the_rest():
    plan = RollingPlan(IDS[:10], max_concurrency=Amount(4), canary=Amount(2))
    assert plan.startable() == [['i-000'], ['i-001']]
    assert plan.startable() == []            # the window has room, but the canary runs alone
    finish(plan, ['i-000'])
    assert plan.startable() == []
    finish(plan, ['i-001'])
    assert plan.startable() == [['i-002'], ['i-003'], ['i-004'], ['i-005']]


def test_canary_larger_than_the_window_respects_the_window():
    plan = RollingPlan(IDS[:10], max_concurrency=Amount(2), canary=Amount(3))
    assert plan.startable() == [['i-000'], ['i-001']]
    finish(plan, ['i-000'])
    assert plan.startable() == [['i-002']]
    finish(plan, ['i-001'])
    assert plan.startable() == []
    finish(plan, ['i-002'])
    assert plan.startable() == [['i-003'], ['i-004']]


def test_canary_failure_halts():
    plan = RollingPlan(IDS[:10], max_concurrency=Amount(5), canary=Amount(2), max_errors=Amount(3))
    plan.startable()
    finish(plan, ['i-001'], 'Failed')
    assert plan.halted == HALT_CANARY
    finish(plan, ['i-000'])
    assert plan.finished and plan.startable() == []
    assert plan.not_started() == IDS[2:10]
    assert plan.skip_reason() == 'not started: the canary (the first 2 instances) did not succeed on i-001'


def test_failure_after_the_canary_is_counted_against_max_errors_only():
    plan = RollingPlan(IDS[:4], max_concurrency=Amount(4), canary=Amount(1))
    plan.startable()
    finish(plan, ['i-000'])
    plan.startable()
    finish(plan, ['i-002'], 'Failed')
    assert plan.halted is None


def test_halt_for_timeout_keeps_the_first_reason():
    plan = RollingPlan(IDS[:4], max_concurrency=Amount(1))
    plan.startable()
    plan.halt(HALT_TIMEOUT, 'the wait_timeout expired first')
    plan.halt('error', 'other')
    assert plan.skip_reason() == 'not started: the wait_timeout expired first'
    assert plan.startable() == []


def test_waves_for_check_mode():
    plan = RollingPlan(IDS[:7], max_concurrency=Amount(3), canary=Amount(1))
    assert plan.waves() == [['i-000'], ['i-001', 'i-002', 'i-003'], ['i-004', 'i-005', 'i-006']]
    assert RollingPlan(IDS[:2]).waves() == [['i-000', 'i-001']]


def test_waves_are_whole_start_groups_that_fit_the_window():
    # a window of 7 starts groups of 2 (a fifth, rounded up): three groups (6 instances) fit, not 7
    plan = RollingPlan(IDS[:10], max_concurrency=Amount(7))
    assert plan.block == 2
    assert plan.waves() == [IDS[:6], IDS[6:10]]
    assert [len(g) for g in plan.startable()] == [2, 2, 2]  # what the run really starts first
    with_canary = RollingPlan(IDS[:10], max_concurrency=Amount(7), canary=Amount(3))
    assert with_canary.waves() == [IDS[:3], IDS[3:10]]  # groups [3,4] [5,6] [7,8] [9]: 7 fit


def test_window_schedule_counts_from_the_last_start():
    pace = WindowSchedule(PollSchedule(floor=0.2, ratio=0.1, cap=5.0))
    assert pace.next_delay(40.0, 3) == 4.0
    pace.restart(38.0)
    assert pace.next_delay(40.0, 3) == 0.2
    assert pace.next_delay(37.0, 3) == 0.2


def test_rolling_message_counts():
    plan = RollingPlan(IDS[:6], max_concurrency=Amount(3), max_errors=Amount(0), stop_on_error=True)
    plan.startable()
    finish(plan, ['i-000'], 'Failed')
    plan.mark_stopped(['i-001', 'i-002'])
    finish(plan, ['i-001'], 'Terminated')
    finish(plan, ['i-002'])
    entries = [instance_entry('i-000', status='Failed', exit_code=3)]
    assert rolling_message(plan, entries) == (
        'rolling run halted, more than max_errors (0) instances failed: 3 of 6 instances ran, 1 failed, '
        '1 were stopped, 3 never started; i-000 (Failed, exit 3)')
    plan = RollingPlan(IDS[:2], canary=Amount(1))
    plan.startable()
    finish(plan, ['i-000'], 'Timeout')
    assert rolling_message(plan, []).startswith('rolling run halted, the canary (the first 1 instances) did not succeed')
