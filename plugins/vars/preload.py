# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: preload
short_description: Load the cloud_assistant connection once in the controller, not in every task's worker
version_added: 0.2.0
description:
  - Sets no variables. Loads the connection plugin C(alicloud_ops.cloud_assistant.cloud_assistant), and with it the
    Alibaba Cloud SDK, once in the C(ansible-playbook) process when Ansible loads its vars plugins (while it reads
    the inventory, before any task runs).
  - Ansible forks a new worker process for every task and host. Without this plugin each worker imports the
    connection plugin and the SDK again and compiles the collection's code it uses (Ansible's collection loader
    compiles collection code from source every time); forked from a controller that has them loaded already,
    the worker starts without that cost, about 0.4 to 0.6 seconds of every task on a small machine (see
    C(docs/performance.md) in the collection).
  - The C(alicloud_ops.cloud_assistant.ecs) inventory plugin does the same when it sets the connection on its hosts
    (its C(use_cloud_assistant_connection) option); this plugin is for hosts from any other inventory.
  - Like every vars plugin from a collection, it runs only when enabled, in C(ansible.cfg) for example
    C(vars_plugins_enabled = host_group_vars,alicloud_ops.cloud_assistant.preload) (keep C(host_group_vars),
    which Ansible enables by default, in the list), or in E(ANSIBLE_VARS_ENABLED).
  - Then it moves what the controller holds at that point out of the garbage collector's sight (Python's
    C(gc.freeze)), once. A task's worker otherwise walks that whole inherited heap on its first full collection,
    copying the memory pages it touches (60 to 85 milliseconds in most task workers once the SDK is loaded).
    Reference counting frees memory as before; only reference cycles among those long-lived objects are no longer
    collected.
  - If the connection cannot be loaded, a warning says why and the play runs as without this plugin.
author:
  - alicloud_ops maintainers (@alicloud-ops)
notes:
  - Costs the controller the same import once (about 0.5 seconds), also for playbooks that do not use the
    connection; enable it where the connection is used.
seealso:
  - plugin: alicloud_ops.cloud_assistant.cloud_assistant
    plugin_type: connection
'''

EXAMPLES = r'''
# ansible.cfg
# [defaults]
# vars_plugins_enabled = host_group_vars,alicloud_ops.cloud_assistant.preload

# or for one run:
# ANSIBLE_VARS_ENABLED=host_group_vars,alicloud_ops.cloud_assistant.preload ansible-playbook -i inventory.yml site.yml
'''

from ansible.plugins.vars import BaseVarsPlugin

from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._preload import preload_connection

NAME = 'alicloud_ops.cloud_assistant.preload'


class VarsModule(BaseVarsPlugin):
    """Loads the connection when Ansible loads its enabled vars plugins; returns no variables."""

    is_stateless = True

    def __init__(self):
        super(VarsModule, self).__init__()
        preload_connection(NAME)

    def get_vars(self, loader, path, entities, cache=True):
        return {}
