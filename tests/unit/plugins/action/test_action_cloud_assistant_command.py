# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The action plugin of cloud_assistant_command: arguments untouched, progress lines from the module's file."""

from __future__ import annotations

import json
import os
import time
from unittest.mock import MagicMock

import pytest

from ansible.plugins.action import ActionBase
from ansible.plugins.shell.sh import ShellModule

from ansible_collections.alicloud_ops.cloud_assistant.plugins.action import cloud_assistant_command as plugin_file
from ansible_collections.alicloud_ops.cloud_assistant.plugins.action.cloud_assistant_command import (
    ActionModule,
    ProgressWatcher,
    progress_interval,
    progress_line,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._progress import PROGRESS_ENV

ARGS = {'command_content': 'uptime', 'instance_ids': ['i-1'], 'some_future_option': {'x': 1}}


def action(transport='local', async_val=0, on_execute=None):
    task = MagicMock()
    task.args = dict(ARGS)
    task.async_val = async_val
    task.environment = [{'LANG': 'C'}]
    connection = MagicMock()
    connection.transport = transport
    connection.has_native_async = False
    connection._shell = ShellModule()
    connection._shell.tmpdir = None
    templar = MagicMock()
    templar.template.side_effect = lambda value: value
    plugin = ActionModule(task, connection, MagicMock(), MagicMock(), templar, MagicMock())
    calls = []

    def execute(module_name=None, module_args=None, task_vars=None, wrap_async=False):
        calls.append(dict(module_name=module_name, module_args=module_args, wrap_async=wrap_async,
                          environment=plugin._compute_environment_string()))
        if on_execute:
            on_execute(plugin)
        return {'changed': True}

    plugin._execute_module = execute
    plugin._remove_tmp_path = MagicMock()
    return plugin, calls


@pytest.fixture(autouse=True)
def no_base_run(monkeypatch):
    monkeypatch.setattr(ActionBase, 'run', lambda self, tmp=None, task_vars=None: {})
    monkeypatch.delenv('CLOUD_ASSISTANT_PROGRESS_INTERVAL', raising=False)


def test_every_argument_goes_to_the_module_untouched_and_a_local_run_gets_the_progress_file():
    plugin, calls = action()
    result = plugin.run(task_vars={'inventory_hostname': 'localhost'})
    assert result == {'changed': True}
    assert calls[0]['module_name'] == 'alicloud_ops.cloud_assistant.cloud_assistant_command'
    assert calls[0]['module_args'] is None  # _execute_module then sends the task's own arguments
    assert plugin._task.args == ARGS
    assert 'LANG=C' in calls[0]['environment']
    assert PROGRESS_ENV + '=' in calls[0]['environment']
    # after the task: no variable, and the file (if the module wrote one) is removed
    assert PROGRESS_ENV not in plugin._compute_environment_string()


@pytest.mark.parametrize('transport, async_val, interval', [('ssh', 0, None), ('local', 30, None), ('local', 0, '0')])
def test_no_progress_file_where_it_could_not_be_read_or_is_not_wanted(monkeypatch, transport, async_val, interval):
    if interval is not None:
        monkeypatch.setenv('CLOUD_ASSISTANT_PROGRESS_INTERVAL', interval)
    plugin, calls = action(transport=transport, async_val=async_val)
    plugin.run(task_vars={})
    assert PROGRESS_ENV not in calls[0]['environment']
    assert calls[0]['wrap_async'] == bool(async_val)


def test_the_counts_the_module_writes_are_shown_every_interval(monkeypatch):
    monkeypatch.setenv('CLOUD_ASSISTANT_PROGRESS_INTERVAL', '0.05')
    shown = []
    monkeypatch.setattr(plugin_file.display, 'display', shown.append)
    paths = []

    def module_waits(plugin):
        path = plugin._progress_path
        paths.append(path)
        time.sleep(0.2)   # nothing written yet: nothing shown
        assert shown == []
        with open(path, 'w') as handle:
            json.dump({'total': 20, 'finished': 12, 'failed': 1, 'elapsed': 31.4}, handle)
        time.sleep(0.3)

    plugin, _calls = action(on_execute=module_waits)
    plugin.run(task_vars={'inventory_hostname': 'web'})
    # the seconds are the task's own (0 here), not the file's, which is rewritten only when a count changes
    assert shown and shown[0] == '[web] cloud_assistant_command: 12 of 20 instances finished, 1 failed (0 s)'
    assert not os.path.exists(paths[0])


def test_watcher_stops_at_once():
    watcher = ProgressWatcher('/nonexistent', 'h', lambda line: None, 10)
    started = time.monotonic()
    watcher.start()
    watcher.stop()
    assert not watcher.is_alive()
    assert time.monotonic() - started < 1


@pytest.mark.parametrize('value, seconds', [(None, 10.0), ('', 10.0), ('2.5', 2.5), ('0', 0.0), ('-3', 0.0), ('x', 10.0)])
def test_interval(value, seconds):
    environ = {} if value is None else {'CLOUD_ASSISTANT_PROGRESS_INTERVAL': value}
    assert progress_interval(environ) == seconds


def test_line():
    assert progress_line({'total': 1, 'finished': 0, 'failed': 0, 'elapsed': 1.0}, 'h', 9.9) == \
        '[h] cloud_assistant_command: 0 of 1 instance finished, 0 failed (9 s)'
