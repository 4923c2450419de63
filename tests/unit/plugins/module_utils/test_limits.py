# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_limits.check_target_selection: the one check of instance_ids/instance_tags every module uses."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import check_target_selection
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._module import module_argument_spec
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_agent
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_command


@pytest.mark.parametrize('ids, tags, says', [
    ([], None, 'instance_ids must not be empty'),
    (['i-a', ''], None, 'instance_ids must not contain empty entries'),
    (['i-a', '  '], None, 'instance_ids must not contain empty entries'),
    (None, {}, 'instance_tags must not be empty'),
    (None, {'': 'x'}, "instance_tags: the key '' is not allowed"),
    (None, {'k': 'https://x'}, "instance_tags: the value of 'k' is not allowed"),
])
def test_bad_selections_are_refused_naming_the_option(ids, tags, says):
    with pytest.raises(CloudAssistantError) as info:
        check_target_selection(ids, tags)
    assert info.value.kind == 'config' and says in info.value.msg


@pytest.mark.parametrize('ids, tags', [(['i-a'], None), (None, {'role': 'web', 'env': ''}), (None, None)])
def test_good_selections_pass(ids, tags):
    check_target_selection(ids, tags)


class Sentinel(Exception):
    pass


@pytest.mark.parametrize('module, resource, params', [
    (cloud_assistant_agent, 'CloudAssistantAgent', {}),
    (cloud_assistant_command, 'CloudAssistantCommand', {'command_content': 'echo'}),
])
def test_every_module_that_takes_targets_checks_them_there_before_any_call(module, resource, params, monkeypatch):
    seen = []

    def check(ids, tags):
        seen.append((ids, tags))
        raise Sentinel()

    def no_api(deadline):
        raise AssertionError('API built before the targets were checked')

    monkeypatch.setattr(module, 'check_target_selection', check)
    values = dict((name, spec.get('default')) for name, spec in module_argument_spec(module.ARGUMENT_SPEC).items())
    values.update(params, instance_ids=['i-a'])
    mod = NS(params=values, check_mode=False, _diff=False, warn=lambda msg: None, started=1000.0, api=no_api)
    with pytest.raises(Sentinel):
        getattr(module, resource)(mod).run()
    assert seen == [(['i-a'], None)]
