# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every module's ``main()`` through the real ``AnsibleModule`` (arguments, check mode, ``exit_json`` /
``fail_json``), with only the API object replaced: which of ``exit_json`` and ``fail_json`` it chooses, and what the
result carries (the IDs of what was created when the task fails, the API's error fields, never a traceback)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _module
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_agent
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_command
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_file
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_invocation
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_invocation_info
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.module_utils.test_commands import FakeCloud

CONNECTION = dict(access_key_id='AKID', access_key_secret='secret', region_id='cn-test',
                  endpoint='127.0.0.1:1', validate_certs=False)


class Exited(Exception):
    def __init__(self, how, result):
        super(Exited, self).__init__(how)
        self.how = how
        self.result = result


class BrokenApi(object):
    """An API object whose every call raises ``error``."""

    def __init__(self, error):
        self.error = error
        self.calls = []

    def call(self, action, request):
        self.calls.append(action)
        raise self.error

    def paginate(self, action, request, extract, token_of=None):
        self.calls.append(action)
        raise self.error


@pytest.fixture()
def outcome(monkeypatch):
    """Replaces exit_json / fail_json by a raise of ``Exited('exit' | 'fail', result)``; ``use(api)`` makes
    ``module.api(deadline)`` return ``api``."""

    def exit_json(self, **result):
        raise Exited('exit', result)

    def fail_json(self, msg, **result):
        result['msg'] = msg
        raise Exited('fail', result)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)

    class Use(object):
        def __call__(self, api):
            monkeypatch.setattr(_module.CloudAssistantModule, 'api', lambda self, deadline: api)
            return api

    return Use()


def run_main(module, **args):
    args = dict(CONNECTION, **args)
    with patch_module_args(args):
        with pytest.raises(Exited) as info:
            module.main()
    json.dumps(info.value.result)   # what AnsibleModule would print: it must serialise
    return info.value.how, info.value.result


# ---------------------------------------------------------------------------------------------------------------
# cloud_assistant_command against the fake cloud of its own unit tests
# ---------------------------------------------------------------------------------------------------------------

def test_command_success_exits(outcome):
    api = outcome(FakeCloud(linux=2))
    how, result = run_main(cloud_assistant_command, instance_ids=['i-l000', 'i-l001'], command_content='echo')
    assert how == 'exit'
    assert result['changed'] is True and 'failed' not in result
    assert [i['invocation_status'] for i in result['instances']] == ['Success', 'Success']
    assert result['invoke_id'] and api.count('RunCommand') == 1


def test_command_failed_instance_fails_with_every_id(outcome):
    api = outcome(FakeCloud(linux=2))
    api.behaviour = lambda iid, content: (('Failed', 3, b'', 'ExitCodeNonzero') if iid == 'i-l001'
                                          else ('Success', 0, b'', ''))
    how, result = run_main(cloud_assistant_command, instance_ids=['i-l000', 'i-l001'], command_content='false')
    assert how == 'fail'
    assert result['msg'].startswith('1 of 2 instances did not succeed: i-l001')
    assert result['changed'] is True    # the command ran: a failed task still says so
    assert result['invoke_id'] == result['invoke_ids'][0] and len(result['instances']) == 2
    assert 'failed' not in result       # fail_json sets it itself


def test_command_check_mode_exits_without_running(outcome):
    api = outcome(FakeCloud(linux=1))
    how, result = run_main(cloud_assistant_command, instance_ids=['i-l000'], command_content='echo',
                           _ansible_check_mode=True)
    assert how == 'exit' and result['changed'] is True
    assert api.mutating_calls() == []


def test_command_bad_input_fails_before_any_call(outcome):
    api = outcome(BrokenApi(AssertionError('no call expected')))
    how, result = run_main(cloud_assistant_command, instance_ids=['i-1'], command_content='echo', timeout=5)
    assert how == 'fail' and 'timeout must be between 10 and 86400' in result['msg']
    assert api.calls == [] and 'error' not in result


def test_command_api_error_fails_with_its_fields(outcome):
    outcome(BrokenApi(CloudAssistantError('DescribeInstances failed: Forbidden.RAM: denied (RequestId: R-9)',
                                          action='DescribeInstances', code='Forbidden.RAM', message='denied',
                                          request_id='R-9')))
    how, result = run_main(cloud_assistant_command, instance_ids=['i-1'], command_content='echo')
    assert how == 'fail'
    assert result['msg'].startswith('DescribeInstances failed: Forbidden.RAM')
    assert result['error']['code'] == 'Forbidden.RAM' and result['error']['request_id'] == 'R-9'


def test_command_unexpected_error_fails_without_a_traceback_in_the_message(outcome):
    outcome(BrokenApi(KeyError('surprise')))
    how, result = run_main(cloud_assistant_command, instance_ids=['i-1'], command_content='echo')
    assert how == 'fail'
    assert result['msg'] == "unexpected error: KeyError: 'surprise'"
    assert 'Traceback' not in result['msg'] and 'Traceback' in result['exception']   # shown only with -vvv


def test_command_api_failing_after_the_run_fails_with_its_invoke_id(outcome):
    api = outcome(FakeCloud(linux=1))
    api.hang = True
    real = api.DescribeInvocations

    def dying(request):
        if api.count('DescribeInvocations') > 1:
            raise CloudAssistantError('DescribeInvocations failed: ServiceUnavailable', action='DescribeInvocations',
                                      code='ServiceUnavailable')
        return real(request)

    api.DescribeInvocations = dying
    how, result = run_main(cloud_assistant_command, instance_ids=['i-l000'], command_content='sleep 1')
    assert how == 'fail'
    assert 'ServiceUnavailable' in result['msg']
    assert result['invoke_id'] in api.invocations and result['changed'] is True


# ---------------------------------------------------------------------------------------------------------------
# Every module: an API error and an unexpected error become fail_json, bad input fails before any call
# ---------------------------------------------------------------------------------------------------------------

MODULES = [
    (cloud_assistant_command, dict(instance_ids=['i-1'], command_content='echo')),
    (cloud_assistant_invocation_info, dict(invoke_id=['t-1'])),
    (cloud_assistant_invocation, dict(invoke_id=['t-1'])),
    (cloud_assistant_agent, dict(instance_ids=['i-1'])),
    (cloud_assistant_file, dict(instance_ids=['i-1'], content='hello', dest='/tmp/x')),
]
IDS = [m.__name__.rsplit('.', 1)[-1] for m, _args in MODULES]


@pytest.mark.parametrize('module, args', MODULES, ids=IDS)
def test_api_error_is_fail_json_with_the_error_fields(outcome, module, args):
    api = outcome(BrokenApi(CloudAssistantError('X failed: Throttling.User: slow down (RequestId: R-2)', action='X',
                                                code='Throttling.User', message='slow down', request_id='R-2')))
    how, result = run_main(module, **args)
    assert how == 'fail', result
    assert 'Throttling.User' in result['msg'], result
    assert api.calls, 'the module called the API'
    assert 'exception' not in result


@pytest.mark.parametrize('module, args', MODULES, ids=IDS)
def test_unexpected_error_is_fail_json_without_a_traceback(outcome, module, args):
    outcome(BrokenApi(ZeroDivisionError('boom')))
    how, result = run_main(module, **args)
    assert how == 'fail', result
    assert result['msg'] == 'unexpected error: ZeroDivisionError: boom'


@pytest.mark.parametrize('module, args', MODULES, ids=IDS)
def test_wait_timeout_under_the_limit_fails_before_any_call(outcome, module, args):
    option = 'wait_timeout' if 'wait_timeout' in module.ARGUMENT_SPEC else 'timeout'
    api = outcome(BrokenApi(AssertionError('no call expected')))
    how, result = run_main(module, **dict(args, **{option: 0}))
    assert how == 'fail' and option in result['msg'], result
    assert api.calls == []
