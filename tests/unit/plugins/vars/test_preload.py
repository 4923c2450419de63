# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preload vars plugin: it loads the connection plugin's class when Ansible loads it, sets no variables, and a
failure to load is a warning, never an error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils import _preload
from ansible_collections.alicloud_ops.cloud_assistant.plugins.vars import preload

CONNECTION_MODULE = 'ansible_collections.alicloud_ops.cloud_assistant.plugins.connection.cloud_assistant'


class FakeLoader(object):
    def __init__(self, answer=None, error=None):
        self.answer = answer
        self.error = error
        self.calls = []

    def get(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        if self.error is not None:
            raise self.error
        return self.answer


@pytest.fixture(autouse=True)
def heap_not_frozen_here(monkeypatch):
    """gc.freeze is for the controller process: never in the test process (the subprocess test checks it)."""
    monkeypatch.setattr(_preload, '_FROZEN', True)


@pytest.fixture
def warnings(monkeypatch):
    seen = []
    monkeypatch.setattr(_preload.display, 'warning', lambda msg, *a, **k: seen.append(msg))
    return seen


def test_loading_the_plugin_loads_the_connection_class_and_sets_no_variables(monkeypatch, warnings):
    loader = FakeLoader(answer=object)
    monkeypatch.setattr(_preload, 'connection_loader', loader)
    plugin = preload.VarsModule()
    assert loader.calls == [('alicloud_ops.cloud_assistant.cloud_assistant', (), {'class_only': True})]
    assert plugin.get_vars(None, '/inventory', []) == {}
    assert len(loader.calls) == 1 and warnings == []


@pytest.mark.parametrize('loader, message', [
    (FakeLoader(error=ImportError('No module named alibabacloud_ecs20140526')), 'No module named alibabacloud_ecs20140526'),
    (FakeLoader(answer=None), 'was not found'),
])
def test_a_connection_that_cannot_be_loaded_is_a_warning(monkeypatch, warnings, loader, message):
    monkeypatch.setattr(_preload, 'connection_loader', loader)
    plugin = preload.VarsModule()
    assert plugin.get_vars(None, '/inventory', []) == {}
    assert len(warnings) == 1 and message in warnings[0]


def test_ansible_loading_the_enabled_plugin_imports_the_connection_module(tmp_path):
    """As ansible-playbook does it, in a process of its own: the plugin loader set up with this collection, the vars
    plugin loaded by name; the connection module (and the SDK) are then imported in that process."""
    root = os.path.abspath(os.path.join(os.path.dirname(preload.__file__), *(['..'] * 5)))
    script = (
        'import gc, sys\n'
        'from ansible.plugins.loader import init_plugin_loader, vars_loader\n'
        'init_plugin_loader([sys.argv[1]])\n'
        'assert "%s" not in sys.modules and gc.get_freeze_count() == 0\n'
        'plugin = vars_loader.get("alicloud_ops.cloud_assistant.preload")\n'
        'assert plugin is not None and plugin.get_vars(None, "/", []) == {}\n'
        'frozen = gc.get_freeze_count()\n'
        'vars_loader.get("alicloud_ops.cloud_assistant.preload")\n'
        'print("%s" in sys.modules, "alibabacloud_ecs20140526.client" in sys.modules, frozen > 10000,\n'
        '      gc.get_freeze_count() == frozen)\n'
    ) % (CONNECTION_MODULE, CONNECTION_MODULE)
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path), ALIBABA_CLOUD_ECS_METADATA_DISABLED='true')
    done = subprocess.run([sys.executable, '-c', script, root], capture_output=True, text=True, timeout=120, env=env,
                          cwd=str(tmp_path), check=False)
    assert done.returncode == 0, done.stderr
    # the controller's heap frozen for the workers it forks, once (a second load freezes nothing more)
    assert done.stdout.split() == ['True', 'True', 'True', 'True']
