# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""The SDK's HTTP sessions in a process Ansible forks: what a worker must not inherit, and what it may.

The SDK keeps one HTTP session (with its pool of open connections) per endpoint in class attributes of its core
(darabonba's ``DaraCore``, Tea's ``TeaCore``). Ansible forks a worker per task and host from the controller process,
which has made calls when the inventory plugin listed the fleet; workers sharing one pooled socket would read each
other's answers, so a forked child starts with no sessions (the parent's stay open for the parent).

What a worker may inherit is the HTTP adapter a session is built on, before it has carried any request: building
one creates a TLS context and loads the CA certificates into it (the system's and certifi's), 50-100 ms of every
task. ``warm_adapters`` builds them in the controller (the ``preload`` vars plugin and the ``ecs`` inventory plugin
call it); a forked worker takes one the first time the SDK asks for an adapter of the same kind, instead of building
its own. The controller itself never uses them (they would then hold its connections), and each worker takes a given
adapter at most once.
"""

from __future__ import annotations

import os
import sys

_SESSION_HOLDERS = (('darabonba.core', 'DaraCore'), ('Tea.core', 'TeaCore'))
# The core the ECS client's requests go through (alibabacloud_tea_openapi 0.4); Tea's is used by the credentials
# library, a few calls per task at most.
_WARMED_CORE = 'darabonba.core'

# (core module, protocol, TLS minimum version, pool size) -> (PID of the process that built it, adapter)
_warm = {}


def _holder(module_name, class_name):
    return getattr(sys.modules.get(module_name), class_name, None)


def _warmed_core():
    """The ECS client's core class and its ``get_adapter`` now (each None when the SDK is not the one expected)."""
    holder = _holder(_WARMED_CORE, 'DaraCore')
    return holder, (getattr(holder, 'get_adapter', None) if holder is not None else None)


def forget_inherited_sessions():
    """In a forked child: drop the sessions the parent opened (their sockets are the parent's)."""
    for module_name, class_name in _SESSION_HOLDERS:
        holder = _holder(module_name, class_name)
        if holder is not None and isinstance(getattr(holder, '_sessions', None), dict):
            holder._sessions = {}


def _key(module_name, prefix, tls_min_version, pool_size):
    return (module_name, str(prefix).upper(), tls_min_version, pool_size)


def _reusing(module_name, build):
    """``get_adapter`` for one core: a warm adapter built by an ancestor process when there is one for these
    arguments, else ``build`` (the SDK's own)."""

    def get_adapter(prefix, tls_min_version=None, pool_size=None):
        key = _key(module_name, prefix, tls_min_version, pool_size)
        found = _warm.get(key)
        if found is not None and found[0] != os.getpid():
            found = _warm.pop(key, None)      # (one thread takes it, another builds its own)
            if found is not None:
                return found[1]
        return build(prefix, tls_min_version, pool_size=pool_size)

    get_adapter.built_by_sdk = build
    return get_adapter


def warm_adapters(protocols=('https', 'http')):
    """Build the ECS client's HTTP adapters for ``protocols`` in this process, for the processes it forks; how many
    were built. Does nothing (0) when the SDK's core is not the one this knows (another SDK version): the workers
    then build their own, as they would anyway."""
    holder, current = _warmed_core()
    build = getattr(current, 'built_by_sdk', None)
    if build is None:
        return 0
    # the pool size the SDK asks for when the client sets none (this collection sets none)
    resolve = getattr(holder, '_resolve_pool_maxsize', None)
    pool_size = resolve({}) if callable(resolve) else None
    built = 0
    for protocol in protocols:
        key = _key(_WARMED_CORE, protocol, None, pool_size)
        if key in _warm:
            continue
        try:
            _warm[key] = (os.getpid(), build(protocol, None, pool_size=pool_size))
        except Exception:  # pylint: disable=broad-exception-caught
            continue    # the worker builds its own, and reports what goes wrong there
        built += 1
    return built


def _install():
    """Route the SDK's ``get_adapter`` through ``_reusing`` (once per process; only the signature it was written
    for: ``get_adapter(prefix, tls_min_version=None, pool_size=None)``)."""
    holder, current = _warmed_core()
    if current is None or getattr(current, 'built_by_sdk', None) is not None:
        return
    code = getattr(current, '__code__', None)
    if code is None or code.co_varnames[:code.co_argcount] != ('prefix', 'tls_min_version', 'pool_size'):
        return
    holder.get_adapter = staticmethod(_reusing(_WARMED_CORE, current))


def install():
    """Called once the SDK is imported: forked children forget the parent's sessions, and may take its warm
    adapters."""
    _install()
    if hasattr(os, 'register_at_fork') and not getattr(install, 'registered', False):
        os.register_at_fork(after_in_child=forget_inherited_sessions)
        install.registered = True
