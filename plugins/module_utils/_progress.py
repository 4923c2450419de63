# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Progress of a wait, for whoever watches it: how many instances have finished, how many of them failed.

A module that waits writes its counts to a small JSON file when the environment variable ``PROGRESS_ENV`` names
one (the collection's action plugins set it, for a module that runs on the controller, and show the counts at
default verbosity: ``plugins/action/cloud_assistant_command.py``). Without the variable nothing is written and
nothing is counted: the module works the same without an action plugin (delegated, run by another action).

::

    report = progress_reporter()          # None unless PROGRESS_ENV is set
    wait_for_invocations(api, ids, deadline, progress=report)

The file holds one JSON object, ``{"total": 20, "finished": 12, "failed": 1, "elapsed": 31.2}``, replaced whole
(``_json_files``), so a reader never sees half of it; it is rewritten only when a count changes. Writing never
fails the wait: an error of the file system ends the reporting, not the task.
"""

from __future__ import annotations

import os
import time

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._json_files import read_json_object, write_json_atomically
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import SUCCESS, is_terminal

PROGRESS_ENV = 'CLOUD_ASSISTANT_PROGRESS_FILE'


def count_instances(instances, scope=None):
    """(total, finished, failed) over ``instances``: {invoke_id: per-instance models (InvokeInstance)} of the
    invocations listed so far; ``scope``: {invoke_id: instance IDs}, only those instances of that invocation
    count. (No import of ``_api``: the action plugin that reads the file imports this file on the controller, where
    the SDK is not needed.)"""
    total = finished = failed = 0
    scope = scope or {}
    for invoke_id, items in instances.items():
        wanted = scope.get(invoke_id)
        for item in items:
            if wanted is not None and item.instance_id not in wanted:
                continue
            total += 1
            status = getattr(item, 'invocation_status', None)
            if is_terminal(status):
                finished += 1
                if status != SUCCESS:
                    failed += 1
    return total, finished, failed


def read_progress(path):
    """The counts a module wrote to ``path`` (a dict), or None when there is none (yet) or it cannot be read."""
    return read_json_object(path)


class ProgressFile(object):
    """Called after each poll with {invoke_id: per-instance models} (and the wait's ``scope``); writes the counts
    to ``path`` when they change."""

    def __init__(self, path, clock=time.monotonic):
        self.path = path
        self.clock = clock
        self.started = clock()
        self.last = None
        self.broken = False

    def __call__(self, instances, scope=None):
        if self.broken:
            return
        counts = count_instances(instances, scope)
        if counts == self.last:
            return
        total, finished, failed = counts
        data = {'total': total, 'finished': finished, 'failed': failed, 'elapsed': round(self.clock() - self.started, 1)}
        if not write_json_atomically(self.path, data):
            self.broken = True
            return
        self.last = counts


def progress_reporter(environ=None):
    """A ``ProgressFile`` for the file ``PROGRESS_ENV`` names, or None when it names none."""
    path = (os.environ if environ is None else environ).get(PROGRESS_ENV)
    return ProgressFile(path) if path else None
