# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""ClientToken derivation for RunCommand, InvokeCommand, CreateCommand and SendFile.

The API treats a repeated request with the same ClientToken (and the same parameters) as the first one: it
returns the first request's IDs and runs nothing again (shared/reference/cloud-assistant-api.md §1.8). A token
is at most 64 ASCII characters and case-sensitive.

``client_token(parts, salt)`` hashes the request's identifying parts (for example the command, the batch of
instance IDs and its position) together with a ``salt``:

* the salt is random for each module run (``new_salt()``) unless the user gives ``client_token``, in which case
  the salt is derived from that value. Within one run every retry of a request (after a lost reply, a 5xx, a
  timeout) sends the same token, so the command never runs twice because of a retry;
* re-running the playbook draws a new salt, so the command runs again, as a user re-running a task expects.
  A user who wants "at most once" across runs sets ``client_token`` to a fixed value.
"""

from __future__ import annotations

import hashlib
import json
import os

TOKEN_PREFIX = 'ansible-'
_DIGEST_CHARS = 48  # 'ansible-' + 48 hex = 56 characters, under the API's 64


def fingerprint(*parts):
    """A stable hex digest of JSON-serialisable parts (identities of commands, schedules, settings)."""
    text = json.dumps(parts, sort_keys=True, separators=(',', ':'), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def new_salt():
    """A fresh random salt for one module run."""
    return os.urandom(16).hex()


def client_token(parts, salt):
    """A deterministic ClientToken (``'ansible-'`` + 48 hex characters) for ``parts`` (JSON-serialisable) and ``salt``."""
    payload = json.dumps({'parts': parts, 'salt': salt}, sort_keys=True, separators=(',', ':'), default=str,
                         ensure_ascii=True)
    return TOKEN_PREFIX + hashlib.sha256(payload.encode('ascii')).hexdigest()[:_DIGEST_CHARS]
