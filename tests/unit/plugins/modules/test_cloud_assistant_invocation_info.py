# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_invocation_info
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules.cloud_assistant_invocation_info import (
    ARGUMENT_SPEC,
    CloudAssistantInvocationInfo,
    parameters_of,
    parse_time,
)
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.fake_invocations import (
    FakeClock,
    FakeEcs,
    FakeModule,
    api_error,
    b64,
    invocation,
)

UTC = timezone.utc


def params(**given):
    values = dict((name, spec.get('default')) for name, spec in ARGUMENT_SPEC.items())
    values.update(given)
    return values


def run(client, check_mode=False, clock=None, module=None, **given):
    """The task's result; a wait sleeps on ``clock`` (a FakeClock, set to the module's start)."""
    module = module or FakeModule(client, params(**given), check_mode=check_mode)
    clock = clock if clock is not None else FakeClock()
    clock.now = module.started
    return CloudAssistantInvocationInfo(module, clock=clock, sleep=clock.sleep).run()


@pytest.mark.parametrize('text, expected', [
    ('2026-11-22', datetime(2026, 11, 22, tzinfo=UTC)),
    ('2026-11-22T01:30:00Z', datetime(2026, 11, 22, 1, 30, tzinfo=UTC)),
    ('2026-11-22T01:30Z', datetime(2026, 11, 22, 1, 30, tzinfo=UTC)),
    ('2026-11-22 09:30:00+08:00', datetime(2026, 11, 22, 1, 30, tzinfo=UTC)),
    ('2026-11-22T01:30:00.250-0130', datetime(2026, 11, 22, 3, 0, tzinfo=UTC)),
    ('2026-11-22t01:30:00z', datetime(2026, 11, 22, 1, 30, tzinfo=UTC)),
])
def test_times(text, expected):
    assert parse_time(text, 'created_after') == expected


@pytest.mark.parametrize('text', ['yesterday', '2026-13-01', '2026-02-30T00:00:00Z', '22/11/2026', '', '2026-11-22T25:00',
                                  '2026-11-22T00:00:00+24:00', '2026-11-22T00:00:00-2500', '2026-11-22T00:00:00+01:60'])
def test_bad_times_name_the_option(text):
    with pytest.raises(CloudAssistantError) as info:
        parse_time(text, 'created_before')
    assert info.value.kind == 'config'
    assert info.value.msg.startswith('created_before: ')


def test_parameters():
    assert parameters_of('{"a": "1"}') == {'a': '1'}
    assert parameters_of('') == {}
    assert parameters_of('[1]') == {}
    assert parameters_of('not json') == {}


def fleet():
    return FakeEcs([
        invocation('t-old', {'i-a': 'Success', 'i-b': 'Success'}, created='2026-11-20T00:00:00Z', tags={'team': 'x'},
                   command_name='deploy'),
        invocation('t-new', {'i-a': 'Failed', 'i-b': 'Success'}, created='2026-11-22T00:00:00Z', tags={'team': 'x'}),
        invocation('t-sched', {'i-b': 'Scheduled'}, repeat_mode='Period', created='2026-11-21T00:00:00Z',
                   command_name='deploy'),
    ])


def test_everything_newest_first_scheduled_included():
    client = fleet()
    result = run(client)
    assert [i['invoke_id'] for i in result['invocations']] == ['t-new', 't-sched', 't-old']
    assert result['changed'] is False
    assert 'instances' not in result   # the run keys come with invoke_id only
    new = result['invocations'][0]
    assert new['command_content'] == 'echo hi'
    assert new['parameters'] == {'a': '1'}
    assert new['tags'] == {'team': 'x'}
    assert new['invocation_status'] == 'Failed'
    assert [e['output'] for e in new['instances']] == ['', '']   # no output unless asked
    assert sorted(new['instances'][0]) == ['dropped', 'error_code', 'error_info', 'exit_code', 'finish_time',
                                           'instance_id', 'invocation_status', 'invoke_id', 'output', 'skipped',
                                           'start_time']


def test_filters_the_api_ignores_with_instance_id_are_applied_anyway():
    client = fleet()
    result = run(client, instance_id='i-b', command_name='deploy', repeat_mode='Once')
    assert [i['invoke_id'] for i in result['invocations']] == ['t-old']
    assert [e['instance_id'] for e in result['invocations'][0]['instances']] == ['i-b']


def test_time_window_and_status_are_applied_by_the_module():
    client = fleet()
    result = run(client, created_after='2026-11-21', created_before='2026-11-22T00:00:00Z')
    assert [i['invoke_id'] for i in result['invocations']] == ['t-sched']
    result = run(client, invocation_status=['Failed', 'PartialFailed'])
    assert [i['invoke_id'] for i in result['invocations']] == ['t-new']
    assert all('InvokeStatus' not in r for r in client.calls('DescribeInvocations'))


def test_nothing_matches():
    assert run(fleet(), tags={'team': 'nobody'})['invocations'] == []


def test_output_of_a_listing_is_fetched_per_invocation():
    client = fleet()
    result = run(client, tags={'team': 'x'}, include_output=True)
    assert [e['output'] for i in result['invocations'] for e in i['instances']] == ['out-i-a\n', 'out-i-b\n'] * 2
    with_output = [r for r in client.calls('DescribeInvocations') if r.get('IncludeOutput')]
    assert sorted(r['InvokeId'] for r in with_output) == ['t-new', 't-old']


def test_output_by_instance_comes_with_the_listing():
    client = fleet()
    result = run(client, instance_id='i-a', include_output=True)
    assert [(i['invoke_id'], [e['output'] for e in i['instances']]) for i in result['invocations']] == [
        ('t-new', ['out-i-a\n']), ('t-old', ['out-i-a\n'])]
    asked = client.calls('DescribeInvocations')
    assert len(asked) == 2   # Timed=true and Timed=false, nothing per invocation
    assert all(r['IncludeOutput'] is True and r['InstanceId'] == 'i-a' for r in asked)


def test_by_ids_the_result_reads_like_a_run_and_unknown_ids_are_named():
    client = fleet()
    result = run(client, invoke_id=['t-old', 't-nope', 't-new'])
    assert result['invoke_ids'] == ['t-old', 't-new']
    assert result['missing_invoke_ids'] == ['t-nope']
    assert [e['invocation_status'] for e in result['instances']] == ['Success', 'Success', 'Failed', 'Success']
    assert result['invocation_status'] == 'PartialFailed'


def test_wait_on_finished_runs_does_not_poll():
    client = fleet()
    result = run(client, invoke_id=['t-old', 't-new'], wait=True)
    assert result['invocation_status'] == 'PartialFailed'
    assert len(client.calls('DescribeInvocations')) == 2
    result = run(client, invoke_id=['t-old'], wait=True, include_output=True)
    assert [e['output'] for e in result['instances']] == ['out-i-a\n', 'out-i-b\n']
    assert [r.get('IncludeOutput') for r in client.calls('DescribeInvocations')[2:]] == [None, True]


def test_wait_on_an_unknown_id_fails_at_once():
    result = run(fleet(), invoke_id=['t-nope'], wait=True)
    assert result['failed'] is True
    assert 't-nope' in result['msg']


def test_wait_times_out_with_the_last_statuses():
    client = FakeEcs([invocation('t-run', {'i-a': 'Running'})])
    clock = FakeClock()
    result = run(client, clock=clock, invoke_id=['t-run'], wait=True, wait_timeout=1)
    assert result['failed'] is True
    assert result['msg'].startswith('wait_timeout (1 s) expired: 1 of 1 instances had not finished: i-a')
    assert result['instances'][0]['invocation_status'] == 'Running'
    assert sum(clock.slept) == pytest.approx(1.0)


def test_wait_timeout_returns_the_output_so_far_and_survives_a_failed_history_read():
    client = FakeEcs([invocation('t-run', {'i-a': 'Running'}, repeat_mode='Period')],
                     fail={'DescribeInvocationResults': {1: api_error('InvalidParameter.Oops')}})
    result = run(client, invoke_id=['t-run'], wait=True, wait_timeout=1, include_output=True, include_history=True)
    assert result['failed'] is True
    assert result['msg'].startswith('wait_timeout (1 s) expired: 1 of 1 instances had not finished: i-a')
    assert 'while reading the history of t-run' in result['msg']
    assert result['instances'][0]['invocation_status'] == 'Running'   # statuses kept
    assert result['instances'][0]['output'] == 'out-i-a\n'           # the output so far
    assert result['instances'][0]['history'] == []
    assert [r.get('IncludeOutput') for r in client.calls('DescribeInvocations')].count(True) == 1   # fetched once


def test_an_api_error_while_waiting_keeps_the_statuses():
    client = FakeEcs([invocation('t-run', {'i-a': 'Running'})],
                     fail={'DescribeInvocations': {2: api_error('InvalidParameter.Oops')}})
    result = run(client, invoke_id=['t-run'], wait=True)
    assert result['failed'] is True
    assert result['msg'].startswith('DescribeInvocations failed: ')
    assert result['msg'].endswith(' - while waiting for t-run')
    assert result['error']['code'] == 'InvalidParameter.Oops'
    assert result['instances'][0]['invocation_status'] == 'Running'


def test_wait_waits_for_the_given_instance_only():
    client = FakeEcs([invocation('t-1', {'i-a': 'Running', 'i-b': 'Success'})])
    clock = FakeClock()
    result = run(client, clock=clock, invoke_id=['t-1'], wait=True, wait_timeout=100, instance_id='i-b')
    assert 'failed' not in result
    assert [(e['instance_id'], e['invocation_status']) for e in result['instances']] == [('i-b', 'Success')]
    assert clock.slept == []


def test_a_failed_history_read_fails_the_task_but_keeps_the_invocations():
    client = fleet()
    client.fail = {'DescribeInvocationResults': {1: api_error('InvalidParameter.Oops')}}
    result = run(client, include_history=True)
    assert result['failed'] is True
    assert result['msg'].startswith('include_history: DescribeInvocationResults failed: ')
    assert [i['invoke_id'] for i in result['invocations']] == ['t-new', 't-sched', 't-old']


def test_a_schedule_that_ends_between_two_reads_is_found():
    """Timed=false misses a live schedule, Timed=true misses it once it ended: the third read finds it."""
    client = FakeEcs([invocation('t-s', {'i-a': 'Running'}, repeat_mode='Period')])

    def end_it(action, number):
        if action == 'DescribeInvocations' and number == 2:
            client.invocations['t-s']['InvokeInstances']['InvokeInstance'][0]['InvocationStatus'] = 'Success'

    client.hook = end_it
    result = run(client, invoke_id=['t-s'])
    assert result['missing_invoke_ids'] == []
    assert result['instances'][0]['invocation_status'] == 'Success'
    assert [r.get('Timed') for r in client.calls('DescribeInvocations')] == [None, True, None]


def test_listing_output_refetch_applies_the_filters_again():
    client = FakeEcs([invocation('t-1', {'i-a': 'Running'}), invocation('t-2', {'i-a': 'Running'},
                                                                        created='2026-11-21T00:00:00Z')])

    def finish_t1(action, number):
        if action == 'DescribeInvocations' and number == 3:   # after the two listings, before the re-reads
            client.invocations['t-1']['InvokeInstances']['InvokeInstance'][0]['InvocationStatus'] = 'Success'

    client.hook = finish_t1
    result = run(client, invocation_status=['Running'], include_output=True)
    assert [i['invoke_id'] for i in result['invocations']] == ['t-2']
    assert all(i['invocation_status'] == 'Running' for i in result['invocations'])


def test_history_of_one_instance_is_asked_for_that_instance():
    client = fleet()
    client.history['t-sched'] = [
        {'InvokeId': 't-sched', 'InstanceId': iid, 'InvocationStatus': 'Success', 'Repeats': 1, 'ExitCode': 0,
         'StartTime': '2026-11-21T00:01:00Z', 'FinishedTime': '2026-11-21T00:01:01Z'} for iid in ('i-b', 'i-c')]
    result = run(client, invoke_id=['t-sched'], instance_id='i-b', include_history=True)
    assert [r.get('InstanceId') for r in client.calls('DescribeInvocationResults')] == ['i-b']
    assert [h['instance_id'] for h in result['instances'][0]['history']] == ['i-b']


def test_a_last_page_without_next_token():
    client = FakeEcs([invocation('t-%02d' % n, {'i-a': 'Success'}, created='2026-11-22T00:%02d:00Z' % n)
                      for n in range(60)], absent_token=True)
    result = run(client, timed=False)
    assert len(result['invocations']) == 60
    assert len(client.calls('DescribeInvocations')) == 2   # two pages of 50


def test_tag_filtered_listings_at_the_cap_warn(monkeypatch):
    assert cloud_assistant_invocation_info.TAG_FILTER_CAP == 1000
    monkeypatch.setattr(cloud_assistant_invocation_info, 'TAG_FILTER_CAP', 2)
    client = fleet()
    module = FakeModule(client, params(tags={'team': 'x'}))
    run(client, module=module)
    assert len(module.warnings) == 1
    assert 'at most 2 invocations for a tag filter' in module.warnings[0]
    module = FakeModule(client, params(command_name='deploy'))   # no tag filter: no cap
    run(client, module=module)
    assert module.warnings == []


def test_history_only_for_schedules_newest_first():
    client = fleet()
    client.history['t-sched'] = [
        {'InvokeId': 't-sched', 'InstanceId': 'i-b', 'InvocationStatus': 'Success', 'Repeats': n, 'ExitCode': 0,
         'Output': b64('run %d\n' % n), 'StartTime': '2026-11-21T00:0%d:00Z' % n,
         'FinishedTime': '2026-11-21T00:0%d:01Z' % n} for n in (1, 2)]
    result = run(client, include_history=True)
    by_id = dict((i['invoke_id'], i) for i in result['invocations'])
    history = by_id['t-sched']['instances'][0]['history']
    assert [(h['repeats'], h['finish_time'], h['output']) for h in history] == [
        (2, '2026-11-21T00:02:01Z', ''), (1, '2026-11-21T00:01:01Z', '')]
    assert by_id['t-old']['instances'][0]['history'] == []
    assert [r['InvokeId'] for r in client.calls('DescribeInvocationResults')] == ['t-sched']
    result = run(client, invoke_id=['t-sched'], include_history=True, include_output=True)
    assert [h['output'] for h in result['instances'][0]['history']] == ['run 2\n', 'run 1\n']


@pytest.mark.parametrize('given, message', [
    ({'invoke_id': ['t-1', ' ']}, 'invoke_id must not be empty'),
    ({'tags': dict(('k%d' % n, 'v') for n in range(21))}, 'tags has 21 entries; at most 20'),
    ({'created_after': '2026-11-22', 'created_before': '2026-11-21'}, 'created_after (2026-11-22) must be earlier'),
    ({'instance_id': ''}, 'instance_id must not be empty'),
    ({'invoke_id': ['t-1'], 'wait': True, 'wait_timeout': 0}, 'wait_timeout must be between 1 and 86520'),
    ({'invoke_id': ['t-1'], 'wait': True, 'wait_timeout': 86521}, 'wait_timeout must be between 1 and 86520'),
    ({'invoke_id': ['t-1'], 'wait_timeout': 30}, 'wait_timeout needs wait=true'),
    ({'tags': {'': 'v'}}, "tags: the key '' is not allowed"),
    ({'tags': {'k' * 65: 'v'}}, 'tags: the key'),
    ({'tags': {'k': 'v' * 129}}, "tags: the value of 'k' is not allowed"),
    ({'tags': {'http://x': 'v'}}, 'tags: the key'),
    ({'created_after': '2026-11-22T00:00:00+24:00'}, 'created_after: '),
])
def test_bad_input_fails_before_any_call(given, message):
    client = fleet()
    with pytest.raises(CloudAssistantError) as info:
        run(client, **given)
    assert message in info.value.msg
    assert client.requests == []


@pytest.mark.parametrize('given', [
    {'tags': {'team': 'x'}, 'include_output': True, 'include_history': True},
    {'invoke_id': ['t-sched', 't-old'], 'wait': True, 'include_output': True, 'include_history': True},
])
def test_check_mode_reads_the_same_and_only_reads(given):
    client = fleet()
    client.invocations['t-sched']['InvokeInstances']['InvokeInstance'][0]['InvocationStatus'] = 'Success'
    checked = run(client, check_mode=True, **given)
    assert set(action for action, dummy in client.requests) <= {'DescribeInvocations', 'DescribeInvocationResults'}
    assert client.requests
    assert checked == run(client, **given)


def test_utc_comparison_across_zones():
    client = fleet()
    later = (datetime(2026, 11, 22, tzinfo=UTC) - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=8)))
    result = run(client, created_after=later.isoformat())
    assert [i['invoke_id'] for i in result['invocations']] == ['t-new']
