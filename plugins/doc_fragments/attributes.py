# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Attribute documentation for the collection's modules (community.crypto style):
#   alicloud_ops.cloud_assistant.attributes               - the base: describes check_mode, diff_mode, idempotent;
#                                                           each module states its own support and details
#   alicloud_ops.cloud_assistant.attributes.action_group  - membership of the cloud_assistant action group
#   alicloud_ops.cloud_assistant.attributes.info_module   - for *_info modules (they change nothing)

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
'''

    ACTION_GROUP = r'''
options: {}
attributes:
  action_group:
    description: >-
      Use C(group/alicloud_ops.cloud_assistant.cloud_assistant) or C(group/cloud_assistant) in C(module_defaults)
      to set defaults for this module, for example the connection and credential options.
    support: full
    membership:
      - alicloud_ops.cloud_assistant.cloud_assistant
'''

    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
    details:
      - This action does not modify state.
'''
