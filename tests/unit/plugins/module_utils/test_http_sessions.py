# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _http_sessions as hs
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._client import HAS_SDK

darabonba_core = pytest.importorskip('darabonba.core')
assert HAS_SDK      # importing _client routed the SDK's get_adapter through _http_sessions


def _in_child(function):
    """``function()``'s result (a short string) from a forked child."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, function().encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    answer = os.read(read, 1000).decode()
    os.close(read)
    return answer


def test_a_forked_worker_takes_the_warm_adapter_once_and_the_controller_never(monkeypatch):
    monkeypatch.setattr(hs, '_warm', {})
    core = darabonba_core.DaraCore
    pool = core._resolve_pool_maxsize({})
    assert hs.warm_adapters(('http',)) == 1
    warm = hs._warm[hs._key(hs._WARMED_CORE, 'http', None, pool)][1]
    # the controller builds its own (the warm one stays for the workers)
    assert core.get_adapter('http', None, pool_size=pool) is not warm
    # a worker: the warm one the first time, then its own; and it starts without the parent's sessions
    monkeypatch.setattr(core, '_sessions', {'http://parent': object()})
    answer = _in_child(lambda: '%s %s %s' % (
        core.get_adapter('http', None, pool_size=pool) is warm,
        core.get_adapter('http', None, pool_size=pool) is warm,
        len(core._sessions)))
    assert answer == 'True False 0'
    # another pool size or TLS minimum: the SDK's own
    assert _in_child(lambda: str(core.get_adapter('http', 'TLSv1.2', pool_size=pool) is warm)) == 'False'
    assert hs.warm_adapters(('http',)) == 0        # already there


def test_an_sdk_whose_get_adapter_is_another_is_left_alone(monkeypatch):
    class OtherCore(object):
        @staticmethod
        def get_adapter(protocol, options):
            return 'theirs'

    monkeypatch.setattr(hs, '_holder', lambda module, name: OtherCore)
    hs._install()
    assert OtherCore.get_adapter('http', None) == 'theirs'
    assert hs.warm_adapters() == 0
