# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules.cloud_assistant_invocation import (
    ARGUMENT_SPEC,
    CloudAssistantInvocation,
)

pytest.importorskip('alibabacloud_ecs20140526.models')

from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.fake_invocations import (  # noqa: E402
    FakeEcs,
    FakeModule,
    invocation,
)


def params(**given):
    values = dict((name, spec.get('default')) for name, spec in ARGUMENT_SPEC.items())
    values.update(given)
    return values


def run(client, check_mode=False, **given):
    return CloudAssistantInvocation(FakeModule(client, params(**given), check_mode=check_mode)).run()


def big(count=120, status='Running'):
    statuses = dict(('i-%03d' % n, status) for n in range(count))
    statuses['i-000'] = 'Success'      # already ended: not stopped
    statuses['i-001'] = 'Stopping'     # another task stops it: waited for, not stopped again
    return FakeEcs([invocation('t-big', statuses)])


def test_only_live_instances_are_stopped_50_per_call_and_waited_for():
    client = big()
    client.invocations['t-big']['InvokeInstances']['InvokeInstance'][1]['InvocationStatus'] = 'Terminated'
    result = run(client, invoke_id=['t-big'])
    stops = client.calls('StopInvocation')
    assert [len(s['InstanceId']) for s in stops] == [50, 50, 18]
    assert 'i-000' not in [i for s in stops for i in s['InstanceId']]
    assert result['changed'] is True
    assert len(result['stopped']['t-big']) == 118
    assert result['invocation_status'] == 'Success'   # one Success, the rest stopped
    assert result['failed'] is False
    assert result['msg'] == 'stopped t-big on 118 instance(s)'
    assert len(result['instances']) == 120


def test_nothing_live_is_no_change():
    client = FakeEcs([invocation('t-done', {'i-a': 'Success', 'i-b': 'Cancelled'})])
    result = run(client, invoke_id=['t-done'])
    assert result['changed'] is False
    assert client.calls('StopInvocation') == []
    assert result['msg'].startswith('nothing to stop')
    assert len(client.calls('DescribeInvocations')) == 2   # before, and the final states with output: no poll


def test_check_mode_stops_nothing():
    client = big()
    result = run(client, check_mode=True, invoke_id=['t-big'])
    assert client.calls('StopInvocation') == []
    assert result['changed'] is True
    assert len(result['would_stop']['t-big']) == 118
    assert result['stopped'] == {}


def test_some_instances_of_a_split_run():
    client = FakeEcs([invocation('t-1', {'i-a': 'Running', 'i-b': 'Running'}),
                      invocation('t-2', {'i-c': 'Pending', 'i-d': 'Running'})])
    result = run(client, invoke_id=['t-1', 't-2'], instance_ids=['i-b', 'i-c'])
    assert result['stopped'] == {'t-1': ['i-b'], 't-2': ['i-c']}
    assert [(e['invoke_id'], e['instance_id'], e['invocation_status']) for e in result['instances']] == [
        ('t-1', 'i-b', 'Terminated'), ('t-2', 'i-c', 'Cancelled')]
    assert result['invoke_ids'] == ['t-1', 't-2']
    rows = dict((r['InstanceId'], r['InvocationStatus']) for inv in client.invocations.values()
                for r in inv['InvokeInstances']['InvokeInstance'])
    assert rows == {'i-a': 'Running', 'i-b': 'Terminated', 'i-c': 'Cancelled', 'i-d': 'Running'}


def test_a_schedule_between_runs_is_stopped():
    client = FakeEcs([invocation('t-s', {'i-a': 'Scheduled'}, repeat_mode='Period')])
    result = run(client, invoke_id=['t-s'])
    assert result['stopped'] == {'t-s': ['i-a']}
    assert result['instances'][0]['invocation_status'] == 'Cancelled'


def test_an_instance_still_stopping_at_the_deadline_fails_the_task():
    client = FakeEcs([invocation('t-1', {'i-a': 'Stopping'})])
    result = run(client, invoke_id=['t-1'], wait_timeout=1)
    assert result['failed'] is True
    assert result['changed'] is False
    assert result['msg'].startswith('wait_timeout (1 s) expired: 1 of 1 instances had not stopped: i-a')


@pytest.mark.parametrize('given, message', [
    ({'invoke_id': ['t-nope', 't-1']}, 'the API does not list t-nope'),
    ({'invoke_id': ['t-1'], 'instance_ids': ['i-a', 'i-zzz']}, 'i-zzz is not part of t-1'),
])
def test_unknown_ids_fail_before_any_stop(given, message):
    client = FakeEcs([invocation('t-1', {'i-a': 'Running'})])
    with pytest.raises(CloudAssistantError) as info:
        run(client, **given)
    assert message in info.value.msg
    assert client.calls('StopInvocation') == []


@pytest.mark.parametrize('given, message', [
    ({'invoke_id': []}, 'invoke_id must not be empty'),
    ({'invoke_id': ['t-1'], 'instance_ids': []}, 'instance_ids must not be empty'),
    ({'invoke_id': ['t-1'], 'wait_timeout': 0}, 'wait_timeout must be between 1 and 86400'),
])
def test_bad_input_fails_before_any_call(given, message):
    client = FakeEcs([invocation('t-1', {'i-a': 'Running'})])
    with pytest.raises(CloudAssistantError) as info:
        run(client, **given)
    assert message in info.value.msg
    assert client.requests == []
