# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of cloud_assistant_command: runs the module with every argument as given, and while it waits for
a run, shows at default verbosity how many instances have finished and how many failed, every
``CLOUD_ASSISTANT_PROGRESS_INTERVAL`` seconds (default 10; 0 turns the lines off).

How: when the module runs on the controller (the local connection: ``delegate_to: localhost`` or a play on
localhost, the usual way to run a cloud module), the module's environment gets ``CLOUD_ASSISTANT_PROGRESS_FILE``
(``module_utils/_progress.py``), the path of a file in Ansible's local temporary directory, to which the module's
wait writes its counts after each poll. A thread of this worker reads it every interval and sends a line through
``Display`` (which the worker relays to the controller's output). The thread and the file end with the task. A
run that ends within the interval prints nothing, and costs one thread start.

The module stays complete without this plugin: on another connection (delegated to a remote host, where the file
could not be read here), with ``async``, or run by another action, it gets no variable and writes nothing.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time

from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._progress import PROGRESS_ENV, read_progress
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._in_place import InPlaceModuleMixin

MODULE = 'alicloud_ops.cloud_assistant.cloud_assistant_command'
INTERVAL_ENV = 'CLOUD_ASSISTANT_PROGRESS_INTERVAL'
DEFAULT_INTERVAL = 10.0

display = Display()


def progress_interval(environ=None):
    """Seconds between two progress lines: ``INTERVAL_ENV``, 10 when unset or not a number; 0 turns them off."""
    value = (os.environ if environ is None else environ).get(INTERVAL_ENV)
    if value is None or value == '':
        return DEFAULT_INTERVAL
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_INTERVAL
    return max(0.0, seconds)


def progress_line(counts, label, elapsed):
    """``'[web] cloud_assistant_command: 12 of 20 instances finished, 1 failed (31 s)'``; ``elapsed``: seconds since
    the task started (the file is rewritten only when a count changes, so its own ``elapsed`` can be old)."""
    total = counts.get('total') or 0
    return '[%s] cloud_assistant_command: %d of %d instance%s finished, %d failed (%d s)' % (
        label, counts.get('finished') or 0, total, '' if total == 1 else 's', counts.get('failed') or 0, int(elapsed))


class ProgressWatcher(threading.Thread):
    """Every ``interval`` seconds, shows the counts in ``path`` (once the module wrote some) with ``show``."""

    def __init__(self, path, label, show, interval):
        super(ProgressWatcher, self).__init__(name='cloud_assistant_command progress')
        self.daemon = True
        self.path = path
        self.label = label
        self.show = show
        self.interval = interval
        self.stopped = threading.Event()
        self.started = time.monotonic()

    def run(self):
        while not self.stopped.wait(self.interval):
            counts = read_progress(self.path)
            if counts is not None:
                self.show(progress_line(counts, self.label, time.monotonic() - self.started))

    def stop(self):
        self.stopped.set()
        self.join(5)


class ActionModule(InPlaceModuleMixin, ActionBase):

    _supports_check_mode = True
    _supports_async = True

    _progress_path = None

    def _compute_environment_string(self, raw_environment_out=None):
        environment = {}
        text = super(ActionModule, self)._compute_environment_string(environment)
        if self._progress_path:
            environment[PROGRESS_ENV] = self._progress_path
            text = self._connection._shell.env_prefix(**environment)
        if isinstance(raw_environment_out, dict):
            raw_environment_out.clear()
            raw_environment_out.update(environment)
        return text

    def _watch(self, task_vars, wrap_async):
        """A started ``ProgressWatcher``, or None when no progress can be shown for this run."""
        interval = progress_interval()
        if wrap_async or not interval or getattr(self._connection, 'transport', None) != 'local':
            return None
        fd, path = tempfile.mkstemp(prefix='cloud_assistant-progress-', suffix='.json', dir=C.DEFAULT_LOCAL_TMP)
        os.close(fd)
        os.remove(path)  # the module creates it at its first poll: until then there is nothing to show
        label = (task_vars or {}).get('inventory_hostname') or 'localhost'
        watcher = ProgressWatcher(path, label, display.display, interval)
        self._progress_path = path
        watcher.start()
        return watcher

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        wrap_async = self._task.async_val and not self._connection.has_native_async
        watcher = self._watch(task_vars, wrap_async)
        try:
            # module_args=None: the task's arguments, untouched
            result = merge_hash(result, self._execute_module(module_name=MODULE, task_vars=task_vars,
                                                             wrap_async=wrap_async))
        finally:
            if watcher is not None:
                watcher.stop()
                self._progress_path = None
                try:
                    os.remove(watcher.path)
                except OSError:
                    pass
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
