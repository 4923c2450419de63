# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""CloudAssistantModule.api(): the module's user sees the transport warnings once, however often api() is called."""

from __future__ import annotations

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _module
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
