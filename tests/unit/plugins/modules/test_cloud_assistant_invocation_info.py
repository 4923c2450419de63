# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules.cloud_assistant_invocation_info import (
    ARGUMENT_SPEC,
    CloudAssistantInvocationInfo,
    parameters_of,
    parse_time,
)

pytest.importorskip('alibabacloud_ecs20140526.models')

from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.fake_invocations import (  # noqa: E402
    FakeEcs,
    FakeModule,
    b64,
    invocation,
)

UTC = timezone.utc


def params(**given):
    values = dict((name, spec.get('default')) for name, spec in ARGUMENT_SPEC.items())
    values.update(given)
    return values


def run(client, check_mode=False, **given):
    return CloudAssistantInvocationInfo(FakeModule(client, params(**given), check_mode=check_mode)).run()


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


@pytest.mark.parametrize('text', ['yesterday', '2026-13-01', '2026-02-30T00:00:00Z', '22/11/2026', '', '2026-11-22T25:00'])
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
    result = run(client, invoke_id=['t-run'], wait=True, wait_timeout=1)
    assert result['failed'] is True
    assert result['msg'].startswith('wait_timeout (1 s) expired: 1 of 1 instances had not finished: i-a')
    assert result['instances'][0]['invocation_status'] == 'Running'


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
    ({'invoke_id': ['t-1'], 'wait': True, 'wait_timeout': 0}, 'wait_timeout must be between 1 and'),
])
def test_bad_input_fails_before_any_call(given, message):
    client = fleet()
    with pytest.raises(CloudAssistantError) as info:
        run(client, **given)
    assert message in info.value.msg
    assert client.requests == []


def test_check_mode_reads_the_same():
    client = fleet()
    assert run(client, check_mode=True, tags={'team': 'x'}) == run(client, tags={'team': 'x'})


def test_utc_comparison_across_zones():
    client = fleet()
    later = (datetime(2026, 11, 22, tzinfo=UTC) - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=8)))
    result = run(client, created_after=later.isoformat())
    assert [i['invoke_id'] for i in result['invocations']] == ['t-new']
