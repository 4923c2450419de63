# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""cloud_assistant_file's pure parts: input checks (before any API call), the per-instance decision, the diff."""

from __future__ import annotations

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules.cloud_assistant_file import CloudAssistantFile


class Module:
    def __init__(self, **params):
        self.params = dict(src=None, content='x', dest='/etc/motd', mode=None, owner=None, group=None,
                           overwrite=True, instance_ids=['i-1'], instance_tags=None, wait_timeout=300)
        self.params.update(params)
        self.check_mode = False
        self._diff = True
        self.started = 100.0

    def api(self, deadline):
        raise AssertionError('no API call expected')


@pytest.mark.parametrize('params, option', [
    (dict(dest='etc/motd'), 'dest'),
    (dict(dest='/etc/'), 'dest'),
    (dict(dest='/' + 'd' * 201 + '/f'), 'dest'),
    (dict(dest='/d/' + 'f' * 256), 'dest'),
    (dict(mode='u+x'), 'mode'),
    (dict(owner='a:b'), 'owner'),
    (dict(group='x' * 65), 'group'),
    (dict(instance_ids=['']), 'instance_ids'),
    (dict(instance_tags={}, instance_ids=None), 'instance_tags'),
    (dict(wait_timeout=5), 'wait_timeout'),
    (dict(src='/no/such/file', content=None), 'src'),
])
def test_bad_input_is_refused_before_any_call(params, option):
    with pytest.raises(CloudAssistantError) as caught:
        CloudAssistantFile(Module(**params)).run()
    assert caught.value.kind == 'config' and option in caught.value.msg


STATE = {'exists': True, 'checksum': 'a' * 64, 'mode': '0644', 'owner': 'root', 'group': 'root', 'uid': '0',
         'gid': '0', 'gzip': True, 'content': b'old\n'}


@pytest.mark.parametrize('params, state, action', [
    ({}, {'exists': False}, 'created'),
    ({}, dict(STATE, checksum='b' * 64), 'replaced'),
    ({}, STATE, 'unchanged'),
    (dict(mode='0600'), STATE, 'attributes'),
    (dict(owner='0'), STATE, 'unchanged'),
    (dict(overwrite=False, mode='0600'), dict(STATE, checksum='b' * 64), 'kept'),
    (dict(overwrite=False), {'exists': False}, 'created'),
])
def test_decide(params, state, action):
    resource = CloudAssistantFile(Module(**params))
    resource.validate()
    assert resource.decide(state, 'a' * 64) == action


def test_effective_attributes_keep_the_existing_ones():
    resource = CloudAssistantFile(Module(owner='web'))
    resource.validate()
    assert resource.effective(dict(STATE, owner='UNKNOWN', uid='1234')) == ('0644', 'web', 'root')
    assert resource.effective({'exists': False}) == (None, 'web', None)


def test_diff_groups_instances_with_the_same_content_before():
    resource = CloudAssistantFile(Module())
    states = {'i-1': STATE, 'i-2': STATE, 'i-3': {'exists': False}, 'i-4': dict(STATE, content=b'\xff\x00'),
              'i-5': STATE}
    actions = {'i-1': 'replaced', 'i-2': 'replaced', 'i-3': 'created', 'i-4': 'replaced', 'i-5': 'unchanged'}
    diffs = resource.diffs(b'new\n', states, actions)
    assert [(d['before_header'], d['before'], d['after']) for d in diffs] == [
        ('i-1, i-2:/etc/motd', 'old\n', 'new\n'),
        ('i-3:/etc/motd', '', 'new\n'),
        ('i-4:/etc/motd', '(binary or larger than 16384 bytes)\n', 'new\n'),
    ]
    assert resource.diffs(b'\x00bin', states, {'i-3': 'created'})[0]['after'].startswith('(binary')
