# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""The base of every module of the collection.

::

    def main():
        module = CloudAssistantModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                                      mutually_exclusive=[...], required_if=[...])
        module.run_resource(MyResource)

``CloudAssistantModule`` adds the connection options (``_options``) to the module's own, fails cleanly when
the SDK is missing, gives the resource class its API object for a deadline (``api(deadline)``), and turns the
resource's result or the collection's errors into ``exit_json`` / ``fail_json`` - never a traceback for an
expected failure.
"""

from __future__ import annotations

import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import build_api
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._client import (
    HAS_SDK,
    SDK_IMPORT_ERROR,
    SDK_REQUIREMENTS,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._options import (
    OptionAdapter,
    credential_argument_spec,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import RetryPolicy


def module_argument_spec(own):
    """The connection options plus a module's own options (a new dict)."""
    spec = credential_argument_spec()
    spec.update(own)
    return spec


class CloudAssistantModule(AnsibleModule):
    """An ``AnsibleModule`` with the collection's connection options, SDK check and error handling.

    ``started``: ``time.monotonic()`` when the module began; task deadlines count from it.
    """

    def __init__(self, argument_spec, **kwargs):
        super(CloudAssistantModule, self).__init__(argument_spec=module_argument_spec(argument_spec), **kwargs)
        self.started = time.monotonic()
        self._api = None
        if not HAS_SDK:
            self.fail_json(msg=missing_required_lib(SDK_REQUIREMENTS), exception=SDK_IMPORT_ERROR)

    def api(self, deadline):
        """The API object whose retries end at ``deadline`` (a ``time.monotonic()`` value). The client is built
        once; later calls share it and its call counters."""
        if self._api is None:
            opts = OptionAdapter.from_module(self).connection_options()
            self._api = build_api(opts, RetryPolicy(deadline=deadline))
            for warning in self._api.warnings:
                self.warn(warning)
            return self._api
        return self._api.with_deadline(deadline)

    def run_resource(self, resource_class):
        """``resource_class(self).run()`` returns the result dict (``failed`` set when the task must fail);
        ``CloudAssistantError`` becomes ``fail_json`` with the API's error fields, and with the resource's
        ``partial_result`` (a dict, when it has set one): what a failed task must still return - the IDs it was
        given or has created - however early an API call failed."""
        resource = None
        try:
            resource = resource_class(self)
            result = resource.run()
        except CloudAssistantError as exc:
            self.fail_json(msg=exc.msg, **dict(getattr(resource, 'partial_result', None) or {}, **exc.result()))
        except Exception as exc:  # pylint: disable=broad-except
            self.fail_json(msg='unexpected error: %s: %s' % (type(exc).__name__, exc),
                           exception=traceback.format_exc())
        if result.pop('failed', False):
            self.fail_json(**result)
        self.exit_json(**result)
