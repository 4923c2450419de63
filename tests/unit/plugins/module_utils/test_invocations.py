# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import threading
from types import SimpleNamespace as NS

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import make_request
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._invocations import (
    decode_output,
    fetch_outputs,
    invocation_finished,
    wait_for_invocations,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import PollSchedule
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._progress import count_instances


class Clock:
    """A fake monotonic clock; sleep() advances it."""

    def __init__(self, now=100.0):
        self.now = now
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def invocation(invoke_id, statuses, outputs=None):
    instances = []
    for n, status in enumerate(statuses):
        instances.append(NS(instance_id='i-%d' % n, invocation_status=status, exit_code=0, dropped=0,
                            error_code='', error_info='', start_time='', finish_time='',
                            output=(outputs or {}).get(n)))
    return NS(invoke_id=invoke_id, invocation_status=None, invoke_instances=NS(invoke_instance=instances))


class FakeApi:
    """DescribeInvocations only: ``timeline[invoke_id]`` is a function clock-time -> statuses."""

    region_id = 'cn-test'

    def __init__(self, clock, timeline, outputs=None):
        self.clock = clock
        self.timeline = timeline
        self.outputs = outputs or {}
        self.requests = []
        self.lock = threading.Lock()

    def call(self, action, request):
        assert action == 'DescribeInvocations'
        with self.lock:
            self.requests.append(request)
        iid = request.invoke_id
        statuses = self.timeline[iid](self.clock())
        outs = self.outputs.get(iid) if getattr(request, 'include_output', None) else None
        return NS(invocations=NS(invocation=[invocation(iid, statuses, outs)]))


def finishes_at(t, n=2, final='Success'):
    return lambda now: [final if now >= t else 'Running'] * n


# -- PollSchedule -------------------------------------------------------------------------------------------------

def test_schedule_is_fast_first_then_proportional_then_capped():
    s = PollSchedule()
    assert s.next_delay(0, 0) == 0.2
    assert s.next_delay(1.0, 4) == 0.2            # 10% of 1 s is under the floor
    assert s.next_delay(10.0, 12) == pytest.approx(1.0)
    assert s.next_delay(50.0, 40) == pytest.approx(5.0)
    assert s.next_delay(3600.0, 100) == 5.0       # cap
    assert s.next_delay(-5, 0) == 0.2             # never below the floor


def test_schedule_first_delay_replaces_only_the_first_one():
    s = PollSchedule(first=0.3)
    assert s.next_delay(0, 0) == 0.3
    assert s.next_delay(0.3, 1) == 0.2
    assert s.next_delay(10.0, 12) == pytest.approx(1.0)
    assert PollSchedule().first is None and PollSchedule().next_delay(0, 0) == 0.2


def test_schedule_second_delay_replaces_only_the_second_one():
    s = PollSchedule(first=0.25, second=0.1)
    assert [s.next_delay(0, 0), s.next_delay(0.25, 1), s.next_delay(0.35, 2)] == [0.25, 0.1, 0.2]
    assert PollSchedule(second=0.1).next_delay(0, 0) == 0.2       # the first stays the schedule's own


def test_schedule_rejects_nonsense():
    with pytest.raises(ValueError):
        PollSchedule(floor=0)
    with pytest.raises(ValueError):
        PollSchedule(floor=2, cap=1)
    with pytest.raises(ValueError):
        PollSchedule(first=0)
    with pytest.raises(ValueError):
        PollSchedule(first=6)
    with pytest.raises(ValueError):
        PollSchedule(second=0)


def test_schedule_call_count_for_a_long_run_is_bounded():
    s = PollSchedule()
    elapsed, polls = 0.0, 0
    while elapsed < 600:
        elapsed += s.next_delay(elapsed, polls)
        polls += 1
    # a 10-minute run: about 150 polls (12 a minute at the cap), not thousands
    assert polls < 170


# -- wait_for_invocations -----------------------------------------------------------------------------------------

def test_wait_polls_each_unfinished_invocation_once_per_round():
    clock = Clock()
    api = FakeApi(clock, {'t-a': finishes_at(100.6), 't-b': finishes_at(101.6)})
    result = wait_for_invocations(api, ['t-a', 't-b'], deadline=200.0, clock=clock, sleep=clock.sleep)
    assert not result.timed_out
    assert result.unfinished == []
    asked = [r.invoke_id for r in api.requests]
    # t-a is done at the third poll (100.75); t-b keeps being asked alone afterwards
    assert asked.count('t-a') == 3
    assert asked.count('t-b') == result.polls
    assert all(not getattr(r, 'include_output', None) for r in api.requests)
    assert set(result.invocations) == {'t-a', 't-b'}
    assert invocation_finished(result.invocations['t-b'])


def test_wait_reports_the_counts_after_every_poll():
    clock = Clock()
    api = FakeApi(clock, {'t-a': finishes_at(100.6, final='Success'), 't-b': finishes_at(101.6, final='Failed')})
    seen = []
    result = wait_for_invocations(api, ['t-a', 't-b'], deadline=200.0, clock=clock, sleep=clock.sleep,
                                  progress=lambda instances, scope: seen.append(count_instances(instances, scope)))
    assert len(seen) == result.polls
    assert seen[0] == (4, 0, 0)
    assert (4, 2, 0) in seen
    assert seen[-1] == (4, 4, 2)


def test_wait_sleeps_follow_the_schedule():
    clock = Clock(0.0)
    api = FakeApi(clock, {'t-a': finishes_at(12.0)})
    wait_for_invocations(api, ['t-a'], deadline=100.0, clock=clock, sleep=clock.sleep)
    assert clock.sleeps[:5] == [0.2] * 5
    assert all(0.2 <= s <= 5.0 for s in clock.sleeps)
    # backs off: later sleeps are longer than the first ones
    assert clock.sleeps[-1] > 1.0


def test_wait_accepts_any_schedule_object():
    class Fixed:
        def next_delay(self, elapsed, polls):
            return 2.0

    clock = Clock(0.0)
    api = FakeApi(clock, {'t-a': finishes_at(5.0)})
    result = wait_for_invocations(api, ['t-a'], deadline=100.0, schedule=Fixed(), clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [2.0, 2.0, 2.0]
    assert result.polls == 3


def test_wait_times_out_with_the_last_known_statuses():
    clock = Clock(0.0)
    api = FakeApi(clock, {'t-a': finishes_at(1.0), 't-b': finishes_at(1000.0)})
    result = wait_for_invocations(api, ['t-a', 't-b'], deadline=10.0, clock=clock, sleep=clock.sleep)
    assert result.timed_out
    assert result.unfinished == ['t-b']
    assert clock.now == pytest.approx(10.0)     # the last poll happens at the deadline, not after it
    statuses = [i.invocation_status for i in result.invocations['t-b'].invoke_instances.invoke_instance]
    assert statuses == ['Running', 'Running']


def test_wait_with_a_past_deadline_asks_nothing():
    clock = Clock(50.0)
    api = FakeApi(clock, {'t-a': finishes_at(0)})
    result = wait_for_invocations(api, ['t-a'], deadline=10.0, clock=clock, sleep=clock.sleep)
    assert result.timed_out and result.polls == 0 and api.requests == []


def test_invocation_with_mixed_terminal_statuses_is_finished():
    assert invocation_finished(invocation('t', ['Success', 'Failed', 'Cancelled']))
    assert not invocation_finished(invocation('t', ['Success', 'Stopping']))
    assert not invocation_finished(None)


# -- outputs ------------------------------------------------------------------------------------------------------

def b64(data):
    return base64.b64encode(data).decode('ascii')


def test_decode_output_text_and_binary():
    assert decode_output(b64('héllo\n'.encode('utf-8'))) == 'héllo\n'
    text = decode_output(b64(b'ok\xff\xfe\x00end'))
    assert text.startswith('ok') and text.endswith('end') and '\ufffd' in text
    assert decode_output('') == ''
    assert decode_output(None) == ''
    assert decode_output('not base64!') == 'not base64!'


def test_fetch_outputs_once_per_invocation_with_base64():
    clock = Clock()
    outputs = {'t-a': {0: b64(b'a0\n'), 1: b64(b'a1\n')}, 't-b': {0: b64(b'b0'), 1: ''}}
    api = FakeApi(clock, {'t-a': finishes_at(0), 't-b': finishes_at(0)}, outputs)
    got = fetch_outputs(api, ['t-a', 't-b', 't-a'])
    assert len(api.requests) == 2
    for request in api.requests:
        assert request.include_output is True
        assert request.content_encoding == 'Base64'
    assert got['t-a']['i-0'].output == 'a0\n'
    assert got['t-a']['i-1'].output == 'a1\n'
    assert got['t-b']['i-0'].output == 'b0'
    assert got['t-b']['i-1'].output == ''


def test_make_request_drops_none():
    request = make_request('DescribeInvocationsRequest', invoke_id='t-1', include_output=None)
    assert request.invoke_id == 't-1'
    assert getattr(request, 'include_output', None) is None
