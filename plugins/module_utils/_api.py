# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""The one place an ECS API call is made: retries, error mapping, call counting and pagination.

::

    api = CloudAssistantApi(ecs_client(opts), opts.region_id, RetryPolicy(deadline=time.monotonic() + 300))
    body = api.call('RunCommand', ecs_models.RunCommandRequest(type='RunShellScript', ...))
    for instance in api.paginate('DescribeInstances', ecs_models.DescribeInstancesRequest(),
                                 lambda body: body.instances.instance):
        ...

``call`` fills in ``RegionId`` when the request has none, calls ``client.<snake_case_action>_with_options``
(falling back to the plain method for clients without it), retries through the ``RetryPolicy`` and raises
``CloudAssistantError`` on failure. Every HTTP attempt, retries included, is counted in ``calls[action]``.
An instance may be shared by threads.
"""

from __future__ import annotations

import re
import threading

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._client import RUNTIME_ATTRIBUTE
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import (
    CloudAssistantError,
    from_exception,
)

try:
    from darabonba.runtime import RuntimeOptions
except ImportError:
    try:
        from alibabacloud_tea_util.models import RuntimeOptions
    except ImportError:
        RuntimeOptions = None

# Largest MaxResults each action accepts (shared/reference/cloud-assistant-api.md §7: 50 for the Cloud Assistant
# Describe* actions, 100 for DescribeInstances).
MAX_PAGE_SIZE = {
    'DescribeInstances': 100,
}
DEFAULT_MAX_PAGE_SIZE = 50
# A safety net against a NextToken chain that never ends (100,000 records at 50 a page is 2,000 pages).
MAX_PAGES = 2500

# Actions that accept a ClientToken: without one they are not idempotent, so a failure after which the service may
# have acted (5xx, lost reply) is not retried.
CLIENT_TOKEN_ACTIONS = frozenset(['RunCommand', 'InvokeCommand', 'CreateCommand', 'SendFile'])

_FIRST_CAP_RE = re.compile(r'(.)([A-Z][a-z]+)')
_ALL_CAP_RE = re.compile(r'([a-z0-9])([A-Z])')


def snake_case(action):
    """``'DescribeCloudAssistantStatus'`` -> ``'describe_cloud_assistant_status'`` (the SDK's method names)."""
    return _ALL_CAP_RE.sub(r'\1_\2', _FIRST_CAP_RE.sub(r'\1_\2', action)).lower()


class CloudAssistantApi:
    """Calls the ECS API through ``client`` (an ``alibabacloud_ecs20140526`` Client or a test double).

    ``calls`` maps each action to the number of HTTP attempts made (retries included).
    """

    def __init__(self, client, region_id, retry, runtime=None):
        self.client = client
        self.region_id = region_id
        self.retry = retry
        self.calls = {}
        self._lock = threading.Lock()
        if runtime is None:
            runtime = getattr(client, RUNTIME_ATTRIBUTE, None)
        self._runtime = dict(runtime or {})
        self._methods = {}

    # -- helpers ----------------------------------------------------------------------------------------------------
    def _count(self, action):
        with self._lock:
            self.calls[action] = self.calls.get(action, 0) + 1

    @property
    def total_calls(self):
        with self._lock:
            return sum(self.calls.values())

    def _method(self, action):
        """(bound method, takes_runtime) for ``action``."""
        if action in self._methods:
            return self._methods[action]
        name = snake_case(action)
        found = None
        with_options = getattr(self.client, name + '_with_options', None)
        if callable(with_options) and RuntimeOptions is not None:
            found = (with_options, True)
        elif callable(getattr(self.client, name, None)):
            found = (getattr(self.client, name), False)
        elif callable(with_options):
            found = (with_options, True)
        if found is None:
            raise CloudAssistantError('%s failed: the ECS client has no method %s' % (action, name),
                                      action=action, kind='other')
        self._methods[action] = found
        return found

    def _runtime_options(self):
        if RuntimeOptions is None:
            return None
        return RuntimeOptions(**self._runtime)

    def _fill_region(self, request):
        if self.region_id and hasattr(request, 'region_id') and not getattr(request, 'region_id', None):
            request.region_id = self.region_id

    # -- calls ------------------------------------------------------------------------------------------------------
    def call(self, action, request):
        """Call ``action`` with ``request`` (an SDK request model); returns ``response.body`` (an SDK model).

        Raises ``CloudAssistantError`` when the call fails for good.
        """
        method, takes_runtime = self._method(action)
        self._fill_region(request)
        idempotent = not (action in CLIENT_TOKEN_ACTIONS and not getattr(request, 'client_token', None))

        def attempt():
            self._count(action)
            if takes_runtime:
                return method(request, self._runtime_options())
            return method(request)

        try:
            response = self.retry.run(attempt, action=action, idempotent=idempotent)
        except CloudAssistantError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise from_exception(action, exc) from exc
        return getattr(response, 'body', response)

    def paginate(self, action, request, extract):
        """Yield the items ``extract(body)`` returns for every page of ``action``.

        Sets ``MaxResults`` to the largest page the action allows and follows ``NextToken`` until it is empty or
        absent. ``request`` is not modified (pages use a copy).
        """
        page_request = _copy_request(request)
        if hasattr(page_request, 'max_results'):
            page_request.max_results = MAX_PAGE_SIZE.get(action, DEFAULT_MAX_PAGE_SIZE)
        seen = set()
        for dummy in range(MAX_PAGES):
            body = self.call(action, page_request)
            yield from extract(body) or ()
            token = getattr(body, 'next_token', None)
            if not token:
                return
            if token in seen:
                raise CloudAssistantError('%s failed: the API returned the NextToken %r twice; stopping' % (action, token),
                                          action=action, kind='other')
            seen.add(token)
            page_request.next_token = token
        raise CloudAssistantError('%s failed: more than %d pages; stopping' % (action, MAX_PAGES), action=action,
                                  kind='other')


def _copy_request(request):
    """A copy of an SDK request model (``to_map``/``from_map``), or a shallow copy of anything else."""
    to_map = getattr(request, 'to_map', None)
    if callable(to_map):
        try:
            return type(request)().from_map(to_map())
        except Exception:  # pylint: disable=broad-except
            pass
    import copy
    return copy.copy(request)
