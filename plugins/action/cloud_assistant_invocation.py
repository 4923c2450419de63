# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of cloud_assistant_invocation: Ansible's usual module run, except that on the controller the module runs from the
installed collection instead of an AnsiballZ zip (``plugins/plugin_utils/_in_place.py`` says when and why)."""

from __future__ import annotations

from ansible.plugins.action.normal import ActionModule as NormalActionModule

from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._in_place import InPlaceModuleMixin


class ActionModule(InPlaceModuleMixin, NormalActionModule):
    pass
