# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import re

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._tokens import client_token, new_salt

TOKEN_RE = re.compile(r'^ansible-[0-9a-f]{48}$')


def test_shape():
    token = client_token(['RunCommand', 'echo hi', ['i-1', 'i-2'], 0], 'salt')
    assert TOKEN_RE.match(token)
    assert len(token) <= 64
    token.encode('ascii')


def test_deterministic():
    parts = {'content': 'echo hi', 'instances': ['i-1', 'i-2'], 'batch': 0}
    assert client_token(parts, 'salt') == client_token(dict(reversed(list(parts.items()))), 'salt')


def test_depends_on_parts_and_salt():
    base = client_token(['echo hi', ['i-1']], 'salt')
    assert client_token(['echo hi', ['i-2']], 'salt') != base
    assert client_token(['echo ho', ['i-1']], 'salt') != base
    assert client_token(['echo hi', ['i-1']], 'other') != base


def test_non_ascii_and_odd_values():
    token = client_token({'content': 'echo \u4f60\u597d', 'timeout': 60, 'when': object.__name__}, '\u00e9')
    assert TOKEN_RE.match(token)


def test_new_salt_is_random():
    salts = set(new_salt() for dummy in range(100))
    assert len(salts) == 100
    assert all(re.match(r'^[0-9a-f]{32}$', salt) for salt in salts)
