# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The action plugin of cloud_assistant_file: what it hands to the module for src (vault too) and content."""

from __future__ import annotations

import os
from unittest.mock import MagicMock

import pytest

from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret
from ansible.plugins.action import ActionBase

from ansible_collections.alicloud_ops.cloud_assistant.plugins.action.cloud_assistant_file import ActionModule

SECRET = [('default', VaultSecret(b'unit-test-password'))]


def action(args, loader):
    task = MagicMock()
    task.args = args
    connection = MagicMock()
    connection._shell.tmpdir = '/remote/tmp'
    connection._shell.join_path.side_effect = os.path.join
    plugin = ActionModule(task, connection, MagicMock(), loader, MagicMock(), MagicMock())
    seen = {}

    def transfer(local, remote):
        with open(local, 'rb') as handle:
            seen['bytes'] = handle.read()
        seen['local'] = local

    plugin._transfer_file = transfer
    plugin._fixup_perms2 = MagicMock()
    plugin._remove_tmp_path = MagicMock()
    plugin._find_needle = lambda kind, name: name
    plugin._execute_module = lambda module_name, module_args, task_vars: {'args': module_args}
    return plugin, seen


@pytest.fixture(autouse=True)
def no_base_run(monkeypatch):
    monkeypatch.setattr(ActionBase, 'run', lambda self, tmp=None, task_vars=None: {})


@pytest.fixture
def vaulted(tmp_path):
    path = tmp_path / 'secret.conf'
    path.write_bytes(VaultLib(SECRET).encrypt(b'password = hunter2\n'))
    loader = DataLoader()
    loader.set_vault_secrets(SECRET)
    return str(path), loader


def test_a_vaulted_src_is_decrypted_and_the_plain_copy_removed(vaulted):
    path, loader = vaulted
    plugin, seen = action({'src': path, 'dest': '/etc/app.conf'}, loader)
    result = plugin.run(task_vars={})
    assert seen['bytes'] == b'password = hunter2\n'
    assert seen['local'] != path and not os.path.exists(seen['local'])
    assert result['args']['src'] == '/remote/tmp/source'


def test_decrypt_false_sends_the_vaulted_file_as_it_is(vaulted):
    path, loader = vaulted
    plugin, seen = action({'src': path, 'dest': '/etc/app.conf', 'decrypt': False}, loader)
    plugin.run(task_vars={})
    with open(path, 'rb') as handle:
        assert seen['bytes'] == handle.read() and seen['bytes'].startswith(b'$ANSIBLE_VAULT')
    assert os.path.exists(path)


def test_a_plain_src_is_sent_as_it_is_and_kept(tmp_path):
    path = tmp_path / 'plain.bin'
    path.write_bytes(b'\x00\x01plain')
    plugin, seen = action({'src': str(path), 'dest': '/x'}, DataLoader())
    plugin.run(task_vars={})
    assert seen['bytes'] == b'\x00\x01plain' and path.exists()


def test_content_goes_through_a_temporary_file_that_is_removed():
    plugin, seen = action({'content': 'hello\n', 'dest': '/x'}, DataLoader())
    result = plugin.run(task_vars={})
    assert seen['bytes'] == b'hello\n' and not os.path.exists(seen['local'])
    assert 'content' not in result['args']
