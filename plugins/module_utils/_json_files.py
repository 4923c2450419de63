# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Small JSON files that one process writes and another reads while it may be writing: one JSON object per file,
replaced whole in one rename, so a reader sees the old object or the new one, never half of one. Used for a wait's
progress (``_progress``) and for what the connection keeps about instances (``plugin_utils/_run_memory``).
"""

from __future__ import annotations

import json
import os
import tempfile


def read_json_object(path):
    """The JSON object (a dict) in ``path``; None when there is no file, it cannot be read, or it holds anything
    else."""
    if path is None:
        return None
    try:
        with open(path, 'rb') as handle:
            value = json.loads(handle.read().decode('utf-8'))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json_atomically(path, data):
    """Replace ``path`` with ``data`` as JSON in one rename; whether it was written (the callers treat a failure as
    harmless: nothing is kept, or the reporting ends)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or '.', prefix='.cloud_assistant-')
    except OSError:
        return False
    try:
        with os.fdopen(fd, 'w') as handle:
            json.dump(data, handle)
        os.rename(tmp, path)
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass
        return False
    return True
