# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._invocations import (
    describe_invocation,
    describe_many,
    invocation_finished,
    invocation_history,
    list_invocations,
    runs_by_instance,
    stop_instances,
    wait_for_invocations,
)
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.fake_invocations import (
    FakeClock,
    FakeEcs,
    api_error,
    api_for,
    b64,
    invocation,
)


def many(count, prefix='t-once', repeat_mode='Once', status='Success'):
    return [invocation('%s%03d' % (prefix, n), {'i-a': status}, repeat_mode=repeat_mode,
                       created='2026-11-22T01:%02d:%02dZ' % (n // 60, n % 60)) for n in range(count)]


def test_listing_reads_every_page_of_both_kinds():
    client = FakeEcs(many(120) + many(3, prefix='t-sched', repeat_mode='Period', status='Scheduled'))
    found = list_invocations(api_for(client))
    assert len(found) == 123
    asked = client.calls('DescribeInvocations')
    # Timed=true (one page), then Timed=false (120 at 50 a page: three pages), always the largest page
    assert [r.get('Timed') for r in asked] == [True, False, False, False]
    assert all(r['MaxResults'] == 50 for r in asked)
    assert [r.get('NextToken') for r in asked] == [None, None, '50', '100']


def test_listing_with_timed_asks_once_and_passes_the_filters():
    client = FakeEcs(many(3) + many(2, prefix='t-sched', repeat_mode='Period', status='Scheduled'))
    found = list_invocations(api_for(client), timed=True, tags={'team': 'x'}, command_name=None, repeat_mode='Period')
    assert found == []  # no invocation has the tag
    (request,) = client.calls('DescribeInvocations')
    assert request['Timed'] is True
    assert request['RepeatMode'] == 'Period'
    assert request['Tag'] == [{'Key': 'team', 'Value': 'x'}]
    assert 'CommandName' not in request


def test_a_schedule_ending_between_the_two_listings_is_seen_once():
    sched = invocation('t-s', {'i-a': 'Scheduled'}, repeat_mode='Period')
    client = FakeEcs([sched])
    real = client.describe_invocations_with_options

    def ending(request, runtime):
        answer = real(request, runtime)
        sched['InvokeInstances']['InvokeInstance'][0]['InvocationStatus'] = 'Cancelled'  # stopped meanwhile
        return answer

    client.describe_invocations_with_options = ending
    found = list_invocations(api_for(client))
    assert [inv.invoke_id for inv in found] == ['t-s']


def test_describe_many_decodes_output_and_marks_unknown_ids():
    client = FakeEcs([invocation('t-1', {'i-a': 'Success'}, outputs={'i-a': 'h\u00e9llo\n'})])
    found = describe_many(api_for(client), ['t-1', 't-nope', 't-1'], include_output=True)
    assert list(found) == ['t-1', 't-nope']
    assert found['t-nope'] is None
    assert found['t-1'].invoke_instances.invoke_instance[0].output == 'h\u00e9llo\n'


def record(instance_id, repeats, status='Success', start=None, output='tick\n'):
    return {'InvokeId': 't-s', 'InstanceId': instance_id, 'InvocationStatus': status, 'Repeats': repeats,
            'ExitCode': 0, 'Output': b64(output), 'Dropped': 0,
            'StartTime': start or '2026-11-22T01:00:%02dZ' % repeats, 'FinishedTime': '2026-11-22T01:00:%02dZ' % repeats}


def test_history_reads_every_page_below_the_invocation_wrapper():
    records = [record('i-a', n) for n in range(1, 121)]
    client = FakeEcs(history={'t-s': records})
    found = invocation_history(api_for(client), 't-s')
    assert len(found) == 120
    assert found[0].output == 'tick\n'
    asked = client.calls('DescribeInvocationResults')
    assert [r.get('NextToken') for r in asked] == [None, '50', '100']
    assert all(r['IncludeHistory'] is True and r['InvokeId'] == 't-s' for r in asked)


def test_runs_newest_first_one_per_run_without_the_next_runs_placeholder():
    models = [NS(instance_id='i-a', invocation_status='Scheduled', repeats=3, start_time='s3'),   # current row
              NS(instance_id='i-a', invocation_status='Success', repeats=1, start_time='s1'),
              NS(instance_id='i-a', invocation_status='Success', repeats=3, start_time='s3'),
              NS(instance_id='i-a', invocation_status='Failed', repeats=2, start_time='s2'),
              NS(instance_id='i-b', invocation_status='Running', repeats=4, start_time='s4'),    # in progress
              NS(instance_id='i-b', invocation_status='Success', repeats=3, start_time='s3'),
              NS(instance_id='i-b', invocation_status='Running', repeats=3, start_time='s3')]    # older view
    runs = runs_by_instance(models)
    assert [(r.repeats, r.invocation_status) for r in runs['i-a']] == [(3, 'Success'), (2, 'Failed'), (1, 'Success')]
    assert [(r.repeats, r.invocation_status) for r in runs['i-b']] == [(4, 'Running'), (3, 'Success')]


def test_runs_without_run_numbers_are_told_apart_by_start_time():
    models = [NS(instance_id='i-a', invocation_status='Success', repeats=None, start_time=t) for t in ('b', 'c', 'a')]
    assert [r.start_time for r in runs_by_instance(models)['i-a']] == ['c', 'b', 'a']


def test_finished_for_some_instances_only():
    inv = NS(invoke_id='t-1', invocation_status='Running', invoke_instances=NS(invoke_instance=[
        NS(instance_id='i-a', invocation_status='Terminated'), NS(instance_id='i-b', invocation_status='Running')]))
    assert not invocation_finished(inv)
    assert invocation_finished(inv, only=['i-a'])
    assert not invocation_finished(inv, only=['i-a', 'i-b'])
    assert invocation_finished(inv, only=[])


def test_wait_with_a_scope_ends_when_the_scoped_instances_are_done():
    client = FakeEcs([invocation('t-1', {'i-a': 'Terminated', 'i-b': 'Running'})])
    clock = NS(now=0.0)

    def sleep(seconds):
        clock.now += seconds

    done = wait_for_invocations(api_for(client), ['t-1'], deadline=30.0, clock=lambda: clock.now, sleep=sleep,
                                scope={'t-1': ['i-a']})
    assert not done.timed_out and done.polls == 1
    still = wait_for_invocations(api_for(client), ['t-1'], deadline=3.0, clock=lambda: clock.now, sleep=sleep,
                                 started=clock.now)
    assert still.timed_out and still.unfinished == ['t-1']


def test_after_a_stop_the_last_real_run_wins_over_the_cancelled_current_row():
    """Stopping a schedule turns its current row Cancelled but keeps Repeats and StartTime: the same run number as
    the history record of the last run (the service sends the current row first)."""
    models = [NS(instance_id='i-a', invocation_status='Cancelled', repeats=3, start_time='s3', finished_time=''),
              NS(instance_id='i-a', invocation_status='Success', repeats=3, start_time='s3', finished_time='f3'),
              NS(instance_id='i-a', invocation_status='Success', repeats=2, start_time='s2', finished_time='f2'),
              NS(instance_id='i-b', invocation_status='Cancelled', repeats=1, start_time='s1', finished_time='')]
    runs = runs_by_instance(models)
    assert [(r.repeats, r.invocation_status, r.finished_time) for r in runs['i-a']] == [
        (3, 'Success', 'f3'), (2, 'Success', 'f2')]
    assert [r.invocation_status for r in runs['i-b']] == ['Cancelled']   # a run cancelled before it started
    models.reverse()
    assert [(r.repeats, r.invocation_status) for r in runs_by_instance(models)['i-a']] == [(3, 'Success'), (2, 'Success')]


def test_a_schedule_ending_between_two_reads_by_id_is_found_by_a_third():
    client = FakeEcs([invocation('t-s', {'i-a': 'Running'}, repeat_mode='Period')])

    def end_it(action, number):
        if number == 2:
            client.invocations['t-s']['InvokeInstances']['InvokeInstance'][0]['InvocationStatus'] = 'Success'

    client.hook = end_it
    assert describe_invocation(api_for(client), 't-s').invoke_id == 't-s'
    assert [r.get('Timed') for r in client.calls('DescribeInvocations')] == [None, True, None]


def test_one_time_invocations_cost_one_read_and_live_schedules_are_asked_timed_first():
    client = FakeEcs([invocation('t-once', {'i-a': 'Success'}), invocation('t-s', {'i-a': 'Scheduled'},
                                                                           repeat_mode='Period')])
    api = api_for(client)
    assert describe_invocation(api, 't-once').invoke_id == 't-once'
    assert [r.get('Timed') for r in client.calls('DescribeInvocations')] == [None]
    assert describe_invocation(api, 't-s', likely_timed=True).invoke_id == 't-s'
    assert [r.get('Timed') for r in client.calls('DescribeInvocations')][1:] == [True]
    assert describe_invocation(api, 't-nope', likely_timed=True) is None
    assert [r.get('Timed') for r in client.calls('DescribeInvocations')][2:] == [True, None]


def test_a_wait_asks_for_a_live_schedule_timed_first_once_seen():
    client = FakeEcs([invocation('t-s', {'i-a': 'Scheduled'}, repeat_mode='Period')])
    clock = FakeClock()
    waited = wait_for_invocations(api_for(client), ['t-s'], deadline=1.0, clock=clock, sleep=clock.sleep,
                                  started=0.0)
    assert waited.timed_out
    flags = [r.get('Timed') for r in client.calls('DescribeInvocations')]
    assert flags[:2] == [None, True]                   # first poll: not known yet
    assert set(flags[2:]) == {True} and len(flags) > 3   # then one call per poll


def test_a_stop_failing_part_way_reports_the_batches_done():
    client = FakeEcs([invocation('t-1', dict(('i-%03d' % n, 'Running') for n in range(120)))],
                     fail={'StopInvocation': {2: api_error('Operation.Conflict')}})
    done = []
    with pytest.raises(CloudAssistantError) as info:
        stop_instances(api_for(client), 't-1', ['i-%03d' % n for n in range(120)], done=done)
    assert info.value.msg.startswith('StopInvocation failed: ')
    assert done == ['i-%03d' % n for n in range(50)]
    assert len(client.calls('StopInvocation')) == 2
