# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two runs of one task at the same moment: one saved command, one schedule, and only one run reports the change
(the claim tag, _claims). The fake service keeps ClientTokens as the reference (section 1.8) describes them: the same
token with the same parameters hands back the first answer, with other parameters it is IdempotentParameterMismatch."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _claims as CL
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _schedules as SCH
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._saved_commands import create_command
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_command as M
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.module_utils.test_commands import (
    FakeCloud,
    _tag_pairs,
    error_of,
    run,
)


def _params(request):
    return sorted((k, repr(v)) for k, v in request.to_map().items())


class TokenCloud(FakeCloud):
    """FakeCloud whose CreateCommand, RunCommand and InvokeCommand keep ClientTokens like the service. With
    ``compare_tags=False`` a repeated token hands back the first answer whatever the tags (a service that would
    leave tags out of its comparison); commands keep their tags and DescribeCommands shows them."""

    def __init__(self, compare_tags=True, **kwargs):
        FakeCloud.__init__(self, **kwargs)
        self.compare_tags = compare_tags
        self.remembered = {}

    def _remembered(self, action, request, create):
        params = [p for p in _params(request) if self.compare_tags or p[0] != 'Tag']
        key = (action, request.client_token)
        if key in self.remembered:
            known, answer = self.remembered[key]
            if known != params:
                raise CloudAssistantError('%s failed: IdempotentParameterMismatch' % action, action=action,
                                          code=CL.MISMATCH)
            return answer
        answer = create()
        self.remembered[key] = (params, answer)
        return answer

    def CreateCommand(self, request):
        def create():
            answer = FakeCloud.CreateCommand(self, request)
            self.commands[answer.command_id]['tags'] = dict(_tag_pairs(request.tag))
            return answer
        return self._remembered('CreateCommand', request, create)

    def DescribeCommands(self, request):
        body = FakeCloud.DescribeCommands(self, request)
        for model in body.commands.command:
            tags = self.commands[model.command_id].get('tags', {})
            model.tags = NS(tag=[NS(tag_key=k, tag_value=v) for k, v in tags.items()])
        return body

    def _start(self, request, command_id, content, repeat_mode):
        # (FakeCloud._start keeps tokens without comparing: this one sees every request first)
        action = type(request).__name__[:-len('Request')]
        return self._remembered(action, request,
                                lambda: FakeCloud._start(self, _without_token(request), command_id, content,
                                                         repeat_mode))


def _without_token(request):
    copy = type(request)().from_map(request.to_map())
    copy.client_token = None
    return copy


def _creates(api):
    return [r for a, r in api.calls if a == 'CreateCommand']


SAVED = dict(name='nightly', command_content='echo nightly')
SCHEDULE = dict(command_content='date', repeat_mode='Period', frequency='rate(5m)')


@pytest.mark.parametrize('compare_tags', [True, False])
def test_two_runs_creating_one_saved_command_report_one_change(monkeypatch, compare_tags):
    api = TokenCloud(compare_tags=compare_tags, linux=1)
    first = run(api, **SAVED)
    # the second run looked before the first one created the command (both started at the same moment)
    monkeypatch.setattr(M, 'describe_commands', lambda api_, name=None, command_id=None: [])
    second = run(api, diff=True, **SAVED)
    assert first['changed'] and first['command_action'] == 'created'
    assert second['changed'] is False and second['command_action'] == 'unchanged'
    assert second['command_id'] == first['command_id'] and len(api.commands) == 1
    assert second['diff']['before'] == second['diff']['after']
    # both sent the same token; the claims differ, and the command carries the first run's
    one, two = _creates(api)
    assert one.client_token == two.client_token
    claims = [dict(_tag_pairs(r.tag))[CL.CLAIM_TAG] for r in (one, two)]
    assert claims[0] != claims[1] and api.commands[first['command_id']]['tags'][CL.CLAIM_TAG] == claims[0]


def test_a_retried_create_of_one_run_is_its_own():
    api = TokenCloud(linux=1)
    fields = dict(name='n', command_content='echo', type='RunShellScript', enable_parameter=False)
    created = create_command(api, fields, claim='aaaa')
    again = create_command(api, fields, claim='aaaa')  # the reply was lost: the same request once more
    assert created == again and created[1] is True and len(api.commands) == 1


def test_a_mismatch_without_such_a_command_takes_a_new_token():
    """The service remembers the token of a command deleted since: not another run's command."""
    api = TokenCloud(linux=1)
    first = run(api, **SAVED)
    del api.commands[first['command_id']]
    second = run(api, **SAVED)
    assert second['changed'] and second['command_action'] == 'created' and second['command_id'] != first['command_id']
    tokens = [r.client_token for r in _creates(api)]
    assert tokens[0] == tokens[1] != tokens[2]


def test_two_runs_submitting_one_schedule_report_one_change(monkeypatch):
    api = TokenCloud(linux=2)
    ids = sorted(api.instances)
    first = run(api, instance_ids=ids, **SCHEDULE)
    monkeypatch.setattr(M, 'find_schedules', lambda api_, key: [])  # the second run looked before the first sent
    second = run(api, instance_ids=ids, **SCHEDULE)
    assert first['changed'] and second['changed'] is False and not second.get('failed')
    assert second['invoke_ids'] == first['invoke_ids'] and len(api.invocations) == 1
    assert 'another run' in second['msg'] and second['invocation_status'] == 'Scheduled'
    assert api.count('StopInvocation') == 0


def test_saved_command_and_schedule_of_two_runs_at_once(monkeypatch):
    api = TokenCloud(linux=1)
    first = run(api, instance_ids=['i-l000'], name='nightly', **SCHEDULE)
    monkeypatch.setattr(M, 'describe_commands', lambda api_, name=None, command_id=None: [])
    monkeypatch.setattr(M, 'find_schedules', lambda api_, key: [])
    second = run(api, instance_ids=['i-l000'], name='nightly', **SCHEDULE)
    assert first['changed'] and second['changed'] is False
    assert (second['command_id'], second['invoke_id']) == (first['command_id'], first['invoke_id'])
    assert len(api.commands) == 1 and len(api.invocations) == 1


def test_batches_another_run_submitted_first_are_taken_over(monkeypatch):
    """Over 100 instances: the other run's request came first for one batch only; that batch's invocation is
    taken over, the other batch is this run's own, and nothing is stopped or reported refused."""
    api = TokenCloud(linux=150)
    ids = sorted(api.instances)
    first = run(api, instance_ids=ids, **SCHEDULE)
    second_batch = [k for k, (_p, answer) in api.remembered.items() if answer.invoke_id == first['invoke_ids'][1]]
    del api.remembered[second_batch[0]]  # as though the first run had not sent that batch yet
    monkeypatch.setattr(M, 'find_schedules', lambda api_, key: [])
    second = run(api, instance_ids=ids, **SCHEDULE)
    assert second['changed'] and not second.get('failed') and api.count('StopInvocation') == 0
    assert second['invoke_ids'][0] == first['invoke_ids'][0] and second['invoke_ids'][1] not in first['invoke_ids']
    assert set(i['invocation_status'] for i in second['instances']) == {'Submitted'}


def test_a_mismatch_for_a_schedule_stopped_since_submits_anew():
    api = TokenCloud(linux=1)
    first = run(api, instance_ids=['i-l000'], **SCHEDULE)
    api.invocations[first['invoke_id']]['rows']['i-l000']['status'] = 'Cancelled'  # stopped by hand
    second = run(api, instance_ids=['i-l000'], **SCHEDULE)
    assert second['changed'] and second['invoke_id'] != first['invoke_id']
    assert api.invocations[second['invoke_id']]['rows']['i-l000']['status'] == 'Scheduled'


def test_merged_is_only_the_mismatch_code():
    assert CL.is_merged(CloudAssistantError('x', code='IdempotentParameterMismatch'))
    assert not CL.is_merged(CloudAssistantError('x', code='IdempotentProcessing'))
    assert not CL.is_merged(None)
    assert CL.claimed_by_other({CL.CLAIM_TAG: 'b'}, 'a') and not CL.claimed_by_other({CL.CLAIM_TAG: 'a'}, 'a')
    assert not CL.claimed_by_other({}, 'a') and CL.claim_tags(None) == {}
    assert len(CL.new_claim()) == 16 and CL.new_claim() != CL.new_claim()


def test_the_claim_takes_one_tag():
    assert 'at most 17 are allowed' in error_of(instance_ids=['i-l000'], tags=dict(('k%d' % n, 'v') for n in range(18)),
                                                **SCHEDULE)
    assert 'at most 19 are allowed' in error_of(tags=dict(('k%d' % n, 'v') for n in range(20)), **SAVED)
    assert SCH.RESERVED_TAGS == 3


# ---------------------------------------------------------------------------------------------------------------
# One-time runs with the same client_token
# ---------------------------------------------------------------------------------------------------------------

def test_two_runs_with_one_client_token_run_once_and_report_one_change():
    api = TokenCloud(linux=2)
    ids = sorted(api.instances)
    first = run(api, instance_ids=ids, command_content='echo once', client_token='deploy-42')
    second = run(api, instance_ids=ids, command_content='echo once', client_token='deploy-42')
    assert first['changed'] and second['changed'] is False and not second.get('failed')
    assert second['invoke_ids'] == first['invoke_ids'] and len(api.invocations) == 1
    assert [i['output'] for i in second['instances']] == [i['output'] for i in first['instances']] == ['ok\n'] * 2
    assert 'another task with the same client_token' in second['msg']
    one, two = [r for a, r in api.calls if a == 'RunCommand']
    assert one.client_token == two.client_token
    tags = [dict(_tag_pairs(r.tag)) for r in (one, two)]
    assert tags[0][M.RUN_TAG] == tags[1][M.RUN_TAG] and tags[0][CL.CLAIM_TAG] != tags[1][CL.CLAIM_TAG]


def test_without_client_token_there_is_no_claim_and_two_runs():
    api = TokenCloud(linux=1)
    first = run(api, instance_ids=['i-l000'], command_content='echo')
    second = run(api, instance_ids=['i-l000'], command_content='echo')
    assert first['changed'] and second['changed'] and first['invoke_id'] != second['invoke_id']
    assert all(not r.tag for a, r in api.calls if a == 'RunCommand')


def test_client_token_over_100_instances_takes_over_each_batch_the_other_sent_first():
    api = TokenCloud(linux=150)
    ids = sorted(api.instances)
    first = run(api, instance_ids=ids, command_content='echo', client_token='t')
    second_batch = [k for k, (_p, answer) in api.remembered.items() if answer.invoke_id == first['invoke_ids'][1]]
    del api.remembered[second_batch[0]]  # as though the first run had not sent that batch yet
    second = run(api, instance_ids=ids, command_content='echo', client_token='t')
    assert second['changed'] and not second.get('failed')
    assert second['invoke_ids'][0] == first['invoke_ids'][0] and second['invoke_ids'][1] not in first['invoke_ids']
    third = run(api, instance_ids=ids, command_content='echo', client_token='t')
    assert third['changed'] is False and third['invoke_ids'] == second['invoke_ids']


def test_a_merged_run_that_cannot_be_found_fails_with_the_mismatch(monkeypatch):
    api = TokenCloud(linux=1)
    run(api, instance_ids=['i-l000'], command_content='echo', client_token='t')
    api.invocations.clear()  # the service no longer lists the first run's invocation
    message = error_of(api, instance_ids=['i-l000'], command_content='echo', client_token='t')
    assert 'IdempotentParameterMismatch' in message


def test_client_token_takes_two_tags():
    assert 'at most 18 are allowed' in error_of(instance_ids=['i-l000'], command_content='echo', client_token='t',
                                                tags=dict(('k%d' % n, 'v') for n in range(19)))
