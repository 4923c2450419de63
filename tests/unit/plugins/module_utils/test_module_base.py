# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""CloudAssistantModule.api(): the module's user sees the transport warnings once, however often api() is called;
run_resource(): a failed task keeps what the resource already knew (its partial_result)."""

from __future__ import annotations

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _module
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._options import ConnectionOptions


class _Api(object):
    def __init__(self, warnings):
        self.warnings = warnings
        self.deadlines = []

    def with_deadline(self, deadline):
        self.deadlines.append(deadline)
        return self


class _Adapter(object):
    def connection_options(self):
        return ConnectionOptions(region_id='cn-hangzhou', endpoint='https://10.0.0.5', validate_certs=False)


def test_transport_warnings_reach_the_module_once(monkeypatch):
    api = _Api(['validate_certs is false: ...'])
    monkeypatch.setattr(_module, 'build_api', lambda opts, retry: api)
    monkeypatch.setattr(_module.OptionAdapter, 'from_module', classmethod(lambda cls, module: _Adapter()))
    module = _module.CloudAssistantModule.__new__(_module.CloudAssistantModule)
    module._api = None
    warned = []
    module.warn = warned.append
    assert module.api(10.0) is api
    assert module.api(20.0) is api
    assert warned == ['validate_certs is false: ...']
    assert api.deadlines == [20.0]


class _Failed(Exception):
    def __init__(self, result):
        Exception.__init__(self)
        self.result = result


def _module_that_fails():
    module = _module.CloudAssistantModule.__new__(_module.CloudAssistantModule)

    def fail_json(**result):
        raise _Failed(result)

    module.fail_json = fail_json
    return module


class _Resource(object):
    """Knows its IDs, then the API fails (the API server went away before the first answer)."""

    def __init__(self, module):
        self.partial_result = None

    def run(self):
        self.partial_result = {'invoke_ids': ['t-1', 't-2'], 'invoke_id': 't-1'}
        raise CloudAssistantError('DescribeInvocations failed: could not reach the endpoint', kind='connection',
                                  action='DescribeInvocations')


class _EarlyResource(_Resource):
    def run(self):
        raise CloudAssistantError('DescribeInvocations failed: could not reach the endpoint', kind='connection')


def test_a_failure_keeps_the_partial_result_of_the_resource():
    with pytest.raises(_Failed) as caught:
        _module_that_fails().run_resource(_Resource)
    result = caught.value.result
    assert result['invoke_ids'] == ['t-1', 't-2'] and result['invoke_id'] == 't-1'
    assert result['msg'] == 'DescribeInvocations failed: could not reach the endpoint'
    assert result['error']['action'] == 'DescribeInvocations'


def test_a_failure_without_a_partial_result_has_only_the_error():
    with pytest.raises(_Failed) as caught:
        _module_that_fails().run_resource(_EarlyResource)
    assert 'invoke_ids' not in caught.value.result
    assert caught.value.result['msg'].startswith('DescribeInvocations failed')
