# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""What the ``cloud_assistant`` connection learns about an instance during one ``ansible-playbook`` run.

Ansible makes a new connection in a new worker process for every task, so nothing the connection learns survives
the task in memory. Facts that do not change while a play runs (a user's home directory, which Ansible asks with
``echo ~user`` before each temporary directory it creates) and what the run learnt about the instance's timing (the
service's lag, the instance's pace: ``_module_times``) are kept in one small JSON file per instance in the
controller's temporary directory for this run (``DEFAULT_LOCAL_TMP``, ``ansible-local-<pid>...``, made private by
Ansible and removed when the run ends), so the tasks after the first one do not ask the instance again. No secret
is ever kept here.

Writes replace the file atomically; two workers writing at once (rare: a host runs one task at a time) each keep
a complete file, and the one that loses only makes a later task ask again.
"""

from __future__ import annotations

import os

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._json_files import read_json_object, write_json_atomically
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._remote_exec import looks_like_instance_id


def local_tmp():
    """This run's local temporary directory (Ansible's ``DEFAULT_LOCAL_TMP``), or None outside Ansible."""
    try:
        from ansible import constants as C
        return C.DEFAULT_LOCAL_TMP or None
    except Exception:  # pylint: disable=broad-exception-caught
        return None


def run_dir():
    """This run's local temporary directory when it exists (where a run's files are kept), else None."""
    base = local_tmp()
    return base if base and os.path.isdir(base) else None


class JsonFacts(object):
    """A small JSON object kept in one file for one connection (one task): read once, at the first lookup; each
    change written at once, whole. ``path`` None: nothing is kept, every lookup misses."""

    def __init__(self, path):
        self.path = path
        self._data = None

    def _read(self):
        if self._data is None:
            self._data = read_json_object(self.path) or {}     # none, or damaged: only a later task asks again
        return self._data

    def get(self, key):
        return self._read().get(key)

    def put(self, key, value):
        self.put_all({key: value})

    def put_all(self, values):
        """Keep every key of ``values`` with its value, in one write (none when nothing changed)."""
        changed = dict((k, v) for k, v in values.items() if self._read().get(k) != v)
        if self.path is None or not changed:
            return
        self._data.update(changed)
        self.save()

    def save(self):
        """Write the facts; what could not be written is not kept here either (the file is read again)."""
        if self.path is not None and not write_json_atomically(self.path, self._read()):
            self._data = None


def instance_file(directory, instance, name):
    """``directory``/``name`` % ``instance`` for an instance ID, else None (never a path made of something else)."""
    return os.path.join(directory, name % instance) if directory and looks_like_instance_id(instance) else None


class RunMemory(JsonFacts):
    """The facts kept for ``instance`` (an instance ID) in ``directory`` (default: this run's local temporary
    directory). Without a usable directory nothing is kept, and every lookup misses."""

    def __init__(self, instance, directory=None):
        directory = directory if directory is not None else run_dir()
        super(RunMemory, self).__init__(instance_file(directory, instance, 'cloud_assistant-%s.json'))
