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
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.fake_invocations import (
    FakeClock,
    FakeEcs,
    FakeModule,
    api_error,
    invocation,
)


def params(**given):
    values = dict((name, spec.get('default')) for name, spec in ARGUMENT_SPEC.items())
    values.update(given)
    return values


def run(client, check_mode=False, clock=None, **given):
    """The task's result; the wait sleeps on ``clock`` (a FakeClock, set to the module's start)."""
    module = FakeModule(client, params(**given), check_mode=check_mode)
    clock = clock if clock is not None else FakeClock()
    clock.now = module.started
    return CloudAssistantInvocation(module, clock=clock, sleep=clock.sleep).run()


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
    client = FakeEcs([invocation('t-1', {'i-a': 'Stopping'})])   # another task's stop that never ends
    clock = FakeClock()
    result = run(client, clock=clock, invoke_id=['t-1'], wait_timeout=1)
    assert result['failed'] is True
    assert result['changed'] is False
    assert result['msg'].startswith('wait_timeout (1 s) expired: 1 of 1 instances had not stopped: i-a')
    assert 'may not be interrupted' in result['msg']
    assert sum(clock.slept) == pytest.approx(1.0)   # waited out its 1 s on the injected clock, no longer


def test_a_running_instance_is_seen_stopping_then_terminated():
    client = FakeEcs([invocation('t-1', {'i-a': 'Running'})])
    result = run(client, invoke_id=['t-1'], wait=False)
    assert result['instances'][0]['invocation_status'] == 'Stopping'
    result = run(client, invoke_id=['t-1'])
    assert result['changed'] is False   # already stopping: waited for, not stopped again
    assert result['instances'][0]['invocation_status'] == 'Terminated'
    assert len(client.calls('StopInvocation')) == 1


def test_a_stop_failing_part_way_keeps_what_it_stopped_and_does_not_wait_for_the_rest():
    client = big()
    client.invocations['t-big']['InvokeInstances']['InvokeInstance'][1]['InvocationStatus'] = 'Terminated'
    client.fail = {'StopInvocation': {2: api_error('Operation.Conflict')}}
    clock = FakeClock()
    result = run(client, clock=clock, invoke_id=['t-big'], wait_timeout=600)
    first_batch = ['i-%03d' % n for n in range(2, 52)]
    assert result['stopped'] == {'t-big': first_batch}
    assert result['changed'] is True
    assert result['failed'] is True
    assert result['msg'].count('StopInvocation failed') == 1
    assert result['msg'].startswith('t-big: StopInvocation failed: ')
    assert '(50 of 118 instance(s) stopped before it)' in result['msg']
    assert result['error']['code'] == 'Operation.Conflict'
    statuses = dict((e['instance_id'], e['invocation_status']) for e in result['instances'])
    assert set(statuses[i] for i in first_batch) == {'Terminated'}   # waited for until they ended
    assert statuses['i-052'] == 'Running' and statuses['i-119'] == 'Running'   # not stopped, not waited for
    assert sum(clock.slept) < 5   # not the 600 s wait_timeout


def test_a_stop_failing_at_once_changes_nothing():
    client = FakeEcs([invocation('t-1', {'i-a': 'Running', 'i-b': 'Running'})],
                     fail={'StopInvocation': {1: api_error('Operation.Conflict')}})
    clock = FakeClock()
    result = run(client, clock=clock, invoke_id=['t-1'])
    assert result['stopped'] == {}
    assert result['changed'] is False
    assert result['failed'] is True
    assert [e['invocation_status'] for e in result['instances']] == ['Running', 'Running']
    assert clock.slept == []   # nothing stopped: nothing to wait for


def test_an_api_error_while_waiting_fails_with_what_was_stopped():
    client = FakeEcs([invocation('t-1', {'i-a': 'Running'})],
                     fail={'DescribeInvocations': {2: api_error('InvalidParameter.Oops')}})
    result = run(client, invoke_id=['t-1'])
    assert result['failed'] is True
    assert result['stopped'] == {'t-1': ['i-a']}
    assert result['changed'] is True
    assert 'while waiting for t-1 to stop' in result['msg']
    assert result['error']['code'] == 'InvalidParameter.Oops'


def test_an_api_failure_before_the_first_answer_still_names_the_invocations():
    """The API unreachable from the start: the task fails with the invoke IDs it was given (_module.run_resource
    returns the resource's partial_result with the error)."""
    client = FakeEcs([invocation('t-1', {'i-a': 'Running'})],
                     fail={'DescribeInvocations': {1: api_error('InvalidParameter.Oops')}})
    module = FakeModule(client, params(invoke_id=['t-1', 't-2', 't-1']))
    resource = CloudAssistantInvocation(module)
    assert resource.partial_result is None
    with pytest.raises(CloudAssistantError):
        resource.run()
    assert resource.partial_result == {'invoke_ids': ['t-1', 't-2'], 'invoke_id': 't-1'}
    assert client.calls('StopInvocation') == []


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
    ({'invoke_id': ['t-1'], 'wait_timeout': 0}, 'wait_timeout must be between 1 and 86520'),
])
def test_bad_input_fails_before_any_call(given, message):
    client = FakeEcs([invocation('t-1', {'i-a': 'Running'})])
    with pytest.raises(CloudAssistantError) as info:
        run(client, **given)
    assert message in info.value.msg
    assert client.requests == []
