# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""CommandRunner.run_rolling on a simulated fleet (fake clock): the window, max_errors, stop_on_error, the canary,
the deadline and retried start calls, as the SDK client sees them."""

from __future__ import annotations

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._rolling import Amount, RollingPlan
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._runner import RUN_TAG, CommandRunner, CommandSpec
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.fake_invocations import (
    FakeClock,
    FakeEcs,
    Response,
    api_error,
    api_for,
    ecs_models,
    invocation,
)

pytestmark = pytest.mark.skipif(ecs_models is None, reason='needs the Alibaba Cloud SDK')

IDS = ['i-%03d' % n for n in range(12)]


class FakeFleet(FakeEcs):
    """RunCommand starts every instance at once; an instance ends ``durations[id]`` (default 1 s) after its start,
    ``Failed`` when it is in ``failing``. A repeated ClientToken returns the first answer."""

    def __init__(self, clock, durations=None, failing=(), **kwargs):
        FakeEcs.__init__(self, **kwargs)
        self.clock = clock
        self.durations = durations or {}
        self.failing = set(failing)
        self.spans = {}       # (invoke_id, instance_id) -> [start, end]
        self.tokens = {}

    def run_command_with_options(self, request, runtime):
        self._log('RunCommand', request)
        with self.lock:
            if request.client_token in self.tokens:
                invoke_id = self.tokens[request.client_token]
            else:
                invoke_id = 't-%04d' % (len(self.invocations) + 1)
                self.tokens[request.client_token] = invoke_id
                inv = invocation(invoke_id, dict((i, 'Running') for i in request.instance_id),
                                 tags=dict((t.key, t.value) for t in request.tag or []),
                                 created='2026-11-22T01:%08.3f' % self.clock.now)
                self.invocations[invoke_id] = inv
                for row in inv['InvokeInstances']['InvokeInstance']:
                    row['ExitCode'] = None
                    start = self.clock.now
                    self.spans[(invoke_id, row['InstanceId'])] = [start, start + self.durations.get(row['InstanceId'], 1.0)]
        return Response(ecs_models.RunCommandResponseBody().from_map(
            {'RequestId': 'R', 'InvokeId': invoke_id, 'CommandId': 'c-1'}))

    def describe_invocations_with_options(self, request, runtime):
        with self.lock:
            for inv in self.invocations.values():
                for row in inv['InvokeInstances']['InvokeInstance']:
                    span = self.spans[(inv['InvokeId'], row['InstanceId'])]
                    if row['InvocationStatus'] == 'Running' and self.clock.now >= span[1]:
                        failed = row['InstanceId'] in self.failing
                        row['InvocationStatus'] = 'Failed' if failed else 'Success'
                        row['ExitCode'] = 1 if failed else 0
                    elif row['InvocationStatus'] in ('Stopping', 'Terminated') and span[1] > self.clock.now:
                        span[1] = self.clock.now
        return FakeEcs.describe_invocations_with_options(self, request, runtime)

    def peak(self):
        events = sorted([(span[0], 1) for span in self.spans.values()] + [(span[1], -1) for span in self.spans.values()])
        peak = current = 0
        for event in events:
            current += event[1]
            peak = max(peak, current)
        return peak

    def started(self):
        return [key[1] for key in sorted(self.spans)]


def rolling(fleet, clock, plan, deadline=300, stop_on_timeout=False):
    runner = CommandRunner(api_for(fleet), clock=clock, sleep=clock.sleep, token_salt='salt')
    return runner.run_rolling(CommandSpec(content='echo hi'), plan, clock.now + deadline,
                              stop_on_timeout=stop_on_timeout)


def test_window_holds_and_refills_as_instances_finish():
    clock = FakeClock()
    durations = dict((iid, 1.0 + (n % 4) * 0.7) for n, iid in enumerate(IDS))
    fleet = FakeFleet(clock, durations)
    plan = RollingPlan(IDS, max_concurrency=Amount(3))
    run = rolling(fleet, clock, plan)
    assert fleet.peak() == 3
    assert [e['instance_id'] for e in run.instances] == IDS
    assert [e['invocation_status'] for e in run.instances] == ['Success'] * 12
    assert len(run.invoke_ids) == 12 and len(fleet.calls('RunCommand')) == 12
    tokens = [r['ClientToken'] for r in fleet.calls('RunCommand')]
    assert len(set(tokens)) == 12
    run_tags = set(t['Value'] for r in fleet.calls('RunCommand') for t in r['Tag'] if t['Key'] == RUN_TAG)
    assert len(run_tags) == 1
    assert plan.report()['halted'] is None
    # a sliding window: the whole run takes far less than 4 lockstep waves of the longest instance (3.1 s)
    assert clock.now < 4 * 3.1


def test_max_errors_stops_new_starts_and_skips_the_rest():
    clock = FakeClock()
    fleet = FakeFleet(clock, failing=[IDS[1], IDS[3]])
    plan = RollingPlan(IDS, max_concurrency=Amount(2), max_errors=Amount(1))
    run = rolling(fleet, clock, plan)
    assert plan.halted == 'max_errors'
    started = fleet.started()
    assert IDS[3] in started and len(started) <= 5
    skipped = [e for e in run.instances if e['skipped']]
    assert [e['instance_id'] for e in skipped] == [i for i in IDS if i not in started]
    assert set(e['reason'] for e in skipped) == {
        'not started: 2 instances failed, more than max_errors (1), so the rolling run halted'}
    assert fleet.calls('StopInvocation') == []
    assert all(e['invocation_status'] in ('Success', 'Failed') for e in run.instances if not e['skipped'])


def test_stop_on_error_stops_the_running_ones():
    clock = FakeClock()
    durations = dict((iid, 100.0) for iid in IDS)
    durations[IDS[0]] = 0.5
    fleet = FakeFleet(clock, durations, failing=[IDS[0]])
    plan = RollingPlan(IDS[:6], max_concurrency=Amount(3), max_errors=Amount(0), stop_on_error=True)
    run = rolling(fleet, clock, plan)
    assert sorted(i for r in fleet.calls('StopInvocation') for i in r['InstanceId']) == IDS[1:3]
    assert [e['invocation_status'] for e in run.instances] == ['Failed', 'Terminated', 'Terminated', 'Skipped',
                                                               'Skipped', 'Skipped']
    assert plan.report()['stopped'] == 2 and plan.report()['failed'] == 1
    assert sorted(run.stopped_ids) == IDS[1:3]
    assert clock.now < 10


class LaggingFleet(FakeFleet):
    """FakeFleet whose listings leave out every invocation but ``shown`` until ``until`` (a listing that has not
    caught up with the latest start calls yet)."""

    def __init__(self, clock, shown, until, **kwargs):
        FakeFleet.__init__(self, clock, **kwargs)
        self.shown = shown
        self.until = until

    def describe_invocations_with_options(self, request, runtime):
        response = FakeFleet.describe_invocations_with_options(self, request, runtime)
        if self.clock.now < self.until:
            body = response.body
            body.invocations.invocation = [i for i in body.invocations.invocation if i.invoke_id in self.shown]
            body.total_count = len(body.invocations.invocation)
        return response


def test_stop_on_error_also_stops_what_no_listing_has_shown_yet():
    clock = FakeClock()
    durations = dict((iid, 100.0) for iid in IDS)
    durations[IDS[0]] = 0.5
    # three groups of one start at once; for 30 s the listings show the first two (the first fails), not the third
    fleet = LaggingFleet(clock, shown=('t-0001', 't-0002'), until=30.0, durations=durations, failing=[IDS[0]])
    plan = RollingPlan(IDS[:6], max_concurrency=Amount(3), max_errors=Amount(0), stop_on_error=True)
    run = rolling(fleet, clock, plan)
    assert sorted(i for r in fleet.calls('StopInvocation') for i in r['InstanceId']) == IDS[1:3]
    assert sorted(run.stopped_ids) == IDS[1:3]
    assert [e['invocation_status'] for e in run.instances] == ['Failed', 'Terminated', 'Terminated', 'Skipped',
                                                               'Skipped', 'Skipped']
    # stopped when the run halted (about 1 s in), not when a listing first showed it (30 s) nor after its 100 s;
    # the wait still lasts until a listing shows its final state
    assert fleet.spans[('t-0003', IDS[2])][1] < 5
    assert 30 <= clock.now < 60


def test_canary_failure_starts_nothing_else():
    clock = FakeClock()
    fleet = FakeFleet(clock, failing=[IDS[1]])
    plan = RollingPlan(IDS, canary=Amount(2))
    run = rolling(fleet, clock, plan)
    assert fleet.started() == IDS[:2]
    assert plan.halted == 'canary'
    assert [e['skipped'] for e in run.instances] == [False, False] + [True] * 10


def test_canary_success_then_the_rest_after_it():
    clock = FakeClock()
    fleet = FakeFleet(clock)
    run = rolling(fleet, clock, RollingPlan(IDS[:6], canary=Amount(2)))
    canary_end = max(fleet.spans[k][1] for k in fleet.spans if k[1] in IDS[:2])
    assert min(fleet.spans[k][0] for k in fleet.spans if k[1] in IDS[2:6]) >= canary_end
    assert [e['invocation_status'] for e in run.instances] == ['Success'] * 6


def test_deadline_covers_the_whole_run():
    clock = FakeClock()
    fleet = FakeFleet(clock, dict((iid, 10.0) for iid in IDS))
    plan = RollingPlan(IDS, max_concurrency=Amount(4))
    run = rolling(fleet, clock, plan, deadline=15)
    assert run.timed_out
    assert plan.halted == 'timeout'
    assert len(fleet.started()) == 8
    assert set(e['reason'] for e in run.instances if e['skipped']) == {'not started: the wait_timeout expired first'}


def test_a_retried_start_call_repeats_its_client_token():
    clock = FakeClock()
    fleet = FakeFleet(clock, fail={'RunCommand': {2: api_error('Throttling.User')}})
    run = rolling(fleet, clock, RollingPlan(IDS[:4], max_concurrency=Amount(2)))
    calls = fleet.calls('RunCommand')
    assert len(calls) == 5
    assert len(set(r['ClientToken'] for r in calls)) == 4
    assert [e['invocation_status'] for e in run.instances] == ['Success'] * 4


def test_groups_and_tokens_are_the_same_in_two_runs_with_one_salt():
    first_clock, second_clock = FakeClock(), FakeClock()
    first = FakeFleet(first_clock, dict((iid, 1.0 + n * 0.3) for n, iid in enumerate(IDS)))
    second = FakeFleet(second_clock, dict((iid, 3.0 - n * 0.2) for n, iid in enumerate(IDS)))
    rolling(first, first_clock, RollingPlan(IDS, max_concurrency=Amount(10)))
    rolling(second, second_clock, RollingPlan(IDS, max_concurrency=Amount(10)))
    assert sorted(r['ClientToken'] for r in first.calls('RunCommand')) == \
        sorted(r['ClientToken'] for r in second.calls('RunCommand'))


def test_first_start_calls_all_refused_raise():
    clock = FakeClock()
    error = api_error('InvalidInstance.NotFound')
    fleet = FakeFleet(clock, fail={'RunCommand': dict((n, error) for n in range(1, 20))})
    with pytest.raises(Exception) as info:
        rolling(fleet, clock, RollingPlan(IDS[:3], max_concurrency=Amount(1), max_errors=Amount(0)))
    assert 'InvalidInstance.NotFound' in str(info.value)


def test_nothing_starts_at_the_deadline():
    """The wait looks once more at its deadline: instances that finished just before must not let new ones start."""
    clock = FakeClock()
    fleet = FakeFleet(clock, dict((iid, 14.9) for iid in IDS))
    plan = RollingPlan(IDS, max_concurrency=Amount(4))
    run = rolling(fleet, clock, plan, deadline=15)
    assert run.timed_out and plan.halted == 'timeout'
    assert len(fleet.started()) == 4
    assert all(span[0] < 15 for span in fleet.spans.values())


def test_refused_start_calls_are_not_repeated_for_every_group():
    """A permission or parameter error refuses every group alike: the first refused round ends the run."""
    clock = FakeClock()
    error = api_error('Forbidden.RAM')
    fleet = FakeFleet(clock, fail={'RunCommand': dict((n, error) for n in range(1, 200))})
    ids = ['i-%03d' % n for n in range(40)]
    with pytest.raises(Exception) as info:
        rolling(fleet, clock, RollingPlan(ids, max_concurrency=Amount(5)))
    assert 'Forbidden.RAM' in str(info.value)
    assert len(fleet.calls('RunCommand')) <= 5


def test_many_small_groups_are_followed_by_id_not_by_paging_the_tag():
    clock = FakeClock()
    ids = ['i-%03d' % n for n in range(60)]
    fleet = FakeFleet(clock)
    run = rolling(fleet, clock, RollingPlan(ids, max_concurrency=Amount(2)))
    assert [e['invocation_status'] for e in run.instances] == ['Success'] * 60
    listings = fleet.calls('DescribeInvocations')
    assert not [r for r in listings if r.get('Tag')]
    # a few calls per poll (the unfinished groups), not a page walk through all 60 invocations each time
    assert len(listings) < 10 * len(ids)
