# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Loading the ``cloud_assistant`` connection plugin in the controller process, before Ansible forks its workers.

Ansible forks a worker for every task and host; a worker forked from a controller that has the connection plugin,
the collection code it uses and the SDK loaded starts without importing them (0.4-0.6 s a task on a small machine,
``docs/performance.md``), and takes the SDK's HTTP adapter the controller built instead of loading CA certificates
(``_http_sessions``). Two plugins call this: the ``preload`` vars plugin (any inventory) and the ``ecs`` inventory
plugin when it sets the connection on its hosts (``use_cloud_assistant_connection``).

Then the objects the controller has so far (Ansible, the SDK, the inventory) are moved out of the garbage
collector's sight (``gc.freeze``, once per process, after a full collection). A forked worker's full collection
otherwise walks the whole inherited heap, copying every page it touches: 60-85 ms in most task workers once the
SDK is loaded, 15-45 ms with it frozen (about 0.8 s less for a 10-task play on one instance). Memory is freed by
reference counting as before; only cycles among these long-lived objects are no longer collected.
"""

from __future__ import annotations

import gc

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.loader import connection_loader
from ansible.utils.display import Display

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._http_sessions import warm_adapters

CONNECTION = 'alicloud_ops.cloud_assistant.cloud_assistant'
_FROZEN = False

display = Display()


def preload_connection(by):
    """Load the connection plugin's class (its module, the collection code it imports and the SDK) into this process;
    whether it was loaded. ``by``: the plugin asking, for the messages. Failing is harmless: the workers then load it
    themselves, as they would without this."""
    try:
        loaded = connection_loader.get(CONNECTION, class_only=True)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        display.warning(u'%s could not be loaded in the controller (each task will load it): %s' % (CONNECTION, to_native(exc)))
        return False
    if loaded is None:
        display.warning(u'%s was not found; %s has nothing to load' % (CONNECTION, by))
        return False
    # and the SDK's HTTP adapters (a TLS context with the CA certificates loaded), which each worker would build
    display.vvv(u'%s: %s loaded in the controller (%d HTTP adapters warmed)' % (by, CONNECTION, warm_adapters()))
    _freeze_heap()
    return True


def _freeze_heap():
    """``gc.freeze`` what the controller holds now, once per process (not per call: each would collect first)."""
    global _FROZEN  # pylint: disable=global-statement
    if not _FROZEN and hasattr(gc, 'freeze'):
        gc.collect()
        gc.freeze()
        _FROZEN = True
