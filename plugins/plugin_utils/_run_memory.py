# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""What the ``cloud_assistant`` connection learns about an instance during one ``ansible-playbook`` run.

Ansible makes a new connection in a new worker process for every task, so nothing the connection learns survives
the task in memory. Facts that do not change while a play runs (a user's home directory, which Ansible asks with
``echo ~user`` before each temporary directory it creates) are kept in one small JSON file per instance in the
controller's temporary directory for this run (``DEFAULT_LOCAL_TMP``, ``ansible-local-<pid>...``, made private by
Ansible and removed when the run ends), so the tasks after the first one do not ask the instance again. No secret
is ever kept here.

Writes replace the file atomically; two workers writing at once (rare: a host runs one task at a time) each keep
a complete file, and the one that loses only makes a later task ask again.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

_SAFE_NAME = re.compile(r'^[A-Za-z0-9_.-]{1,128}\Z')


def read_json_dict(path):
    """The JSON object in ``path``; {} when there is none, or it is damaged (only a later task asks again)."""
    if path is None:
        return {}
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json_atomically(path, data):
    """Replace ``path`` with ``data`` as JSON in one rename (a reader sees the old file or the new one, whole);
    failing to write is harmless for what these files hold."""
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.cloud_assistant-')
        with os.fdopen(fd, 'w') as handle:
            json.dump(data, handle)
        os.rename(tmp, path)
    except OSError:
        pass


def _run_dir():
    try:
        from ansible import constants as C
        base = C.DEFAULT_LOCAL_TMP
    except Exception:  # pylint: disable=broad-exception-caught
        return None
    return base if base and os.path.isdir(base) else None


class RunMemory(object):
    """The facts kept for ``instance`` (an instance ID) in ``directory`` (default: this run's local temporary
    directory). Without a usable directory nothing is kept, and every lookup misses."""

    def __init__(self, instance, directory=None):
        directory = directory if directory is not None else _run_dir()
        self.path = None
        if directory and _SAFE_NAME.match(str(instance or '')):
            self.path = os.path.join(directory, 'cloud_assistant-%s.json' % instance)

    def get(self, key):
        return read_json_dict(self.path).get(key)

    def put(self, key, value):
        if self.path is None:
            return
        data = read_json_dict(self.path)
        if data.get(key) == value:
            return
        data[key] = value
        write_json_atomically(self.path, data)
