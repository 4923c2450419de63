# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""The one place an ECS API call is made: retries, error mapping, call counting, pagination, and the helpers
that build requests and read answers.

::

    api = build_api(opts, RetryPolicy(deadline=time.monotonic() + 300))
    body = api.call('RunCommand', make_request('RunCommandRequest', type='RunShellScript', ...))
    for instance in api.paginate('DescribeInstances', make_request('DescribeInstancesRequest'), instances_of):
        ...

``call`` fills in ``RegionId`` when the request has none, calls ``client.<snake_case_action>_with_options``
(falling back to the plain method for clients without it) with the TLS and timeout settings it was built with,
retries through the ``RetryPolicy`` and raises ``CloudAssistantError`` on failure. Every HTTP attempt, retries
included, is counted in ``calls[action]``. An instance may be shared by threads; ``with_deadline`` gives a view
with another retry deadline that shares the client and the counters.
"""

from __future__ import annotations

import copy
import re
import threading

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._client import (
    ecs_client,
    runtime_settings,
    transport_warnings,
)
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

try:
    from alibabacloud_ecs20140526 import models as ecs_models
except ImportError:  # pragma: no cover - exercised only without the SDK
    ecs_models = None

# ``call_raw``: the SDK's generic call, as its generated ``*_with_options`` methods make it (newer SDKs first).
try:
    from alibabacloud_tea_openapi.utils import Utils as _QueryUtils
    from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params
except ImportError:
    try:
        from alibabacloud_openapi_util.client import Client as _QueryUtils
        from alibabacloud_tea_openapi.models import OpenApiRequest, Params
    except ImportError:
        _QueryUtils = OpenApiRequest = Params = None

# Largest MaxResults each action accepts (shared/reference/cloud-assistant-api.md §7: 50 for the Cloud Assistant
# Describe* actions, 100 for DescribeInstances).
MAX_PAGE_SIZE = {
    'DescribeInstances': 100,
}
DEFAULT_MAX_PAGE_SIZE = 50
# The version and wire style of the ECS API, every action of which this collection calls (what the SDK's generated
# methods send; ``call_raw`` sends the same).
ECS_API_VERSION = '2014-05-26'
RPC_PARAMS = dict(version=ECS_API_VERSION, protocol='HTTPS', pathname='/', method='POST', auth_type='AK', style='RPC',
                  req_body_type='formData', body_type='json')
# A safety net against a NextToken chain that never ends (100,000 records at 50 a page is 2,000 pages).
MAX_PAGES = 2500

# Actions that accept a ClientToken: without one they are not idempotent, so a failure after which the service may
# have acted (5xx, lost reply) is not retried.
CLIENT_TOKEN_ACTIONS = frozenset(['RunCommand', 'InvokeCommand', 'CreateCommand', 'SendFile'])
# Actions that take no ClientToken at all (SDK request models) and must never be repeated once the service may have
# acted: a second RebootInstance restarts the instance again (or is refused with IncorrectInstanceStatus while the
# first restart runs), a second InstallCloudAssistant installs again. Only a throttling answer is retried.
NOT_REPEATABLE_ACTIONS = frozenset(['RebootInstance', 'InstallCloudAssistant'])

_FIRST_CAP_RE = re.compile(r'(.)([A-Z][a-z]+)')
_ALL_CAP_RE = re.compile(r'([a-z0-9])([A-Z])')


def snake_case(action):
    """``'DescribeCloudAssistantStatus'`` -> ``'describe_cloud_assistant_status'`` (the SDK's method names)."""
    return _ALL_CAP_RE.sub(r'\1_\2', _FIRST_CAP_RE.sub(r'\1_\2', action)).lower()


class CloudAssistantApi:
    """Calls the ECS API through ``client`` (an ``alibabacloud_ecs20140526`` Client or a test double).

    ``runtime``: the per-request settings (``_client.runtime_settings``: TLS verification, timeouts) the SDK
    takes as ``RuntimeOptions`` on each call. ``calls`` maps each action to the number of HTTP attempts made
    (retries included).
    """

    def __init__(self, client, region_id, retry, runtime=None):
        self.client = client
        self.region_id = region_id
        self.retry = retry
        self.calls = {}
        self._lock = threading.Lock()
        self._runtime = dict(runtime or {})
        self._methods = {}
        # what the caller should show its user once (``_client.transport_warnings``)
        self.warnings = []

    def with_deadline(self, deadline):
        """The same API (client, settings, call and retry counters) whose retries end at ``deadline`` (a clock
        value)."""
        view = copy.copy(self)
        view.retry = copy.copy(self.retry)
        view.retry.deadline = deadline
        return view

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
        if self.region_id and not getattr(request, 'region_id', None):
            request.region_id = self.region_id

    # -- calls ------------------------------------------------------------------------------------------------------
    def call(self, action, request):
        """Call ``action`` with ``request`` (an SDK request model); returns ``response.body`` (an SDK model).

        Raises ``CloudAssistantError`` when the call fails for good.
        """
        method, takes_runtime = self._method(action)
        self._fill_region(request)

        def attempt():
            self._count(action)
            if takes_runtime:
                return method(request, self._runtime_options())
            return method(request)

        response = self._retried(action, request, attempt)
        return getattr(response, 'body', response)

    def _retried(self, action, request, attempt):
        """``attempt()`` under the retry policy (a call that would not be safe to repeat is not repeated); any error
        but the collection's own becomes a ``CloudAssistantError`` naming ``action``."""
        idempotent = action not in NOT_REPEATABLE_ACTIONS and not (
            action in CLIENT_TOKEN_ACTIONS and not getattr(request, 'client_token', None))
        try:
            return self.retry.run(attempt, action=action, idempotent=idempotent)
        except CloudAssistantError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise from_exception(action, exc) from exc

    def call_raw(self, action, request):
        """``call``, but the answer's body is returned as the API's JSON (a dict with the API's field names, such as
        ``{'Instances': {'Instance': [...]}, 'NextToken': ...}``), without SDK models.

        For long listings: building an SDK model for every record (and, for a caller that keeps dicts, turning it
        back into one) costs more than the call. The request is sent as the SDK's generated method sends it (its
        ``to_map`` field names, ``RPC_PARAMS``). With an SDK or a client that cannot make such a call, this is
        ``call`` with the body's ``to_map()``.
        """
        call_api = getattr(self.client, 'call_api', None)
        if Params is None or not callable(call_api) or RuntimeOptions is None:
            body = self.call(action, request)
            return body.to_map() if hasattr(body, 'to_map') else body
        self._fill_region(request)
        params = Params(action=action, **RPC_PARAMS)

        def attempt():
            self._count(action)
            request.validate()
            fields = dict((k, v) for k, v in request.to_map().items() if v is not None and v != [])
            return call_api(params, OpenApiRequest(query=_QueryUtils.query(fields)), self._runtime_options())

        response = self._retried(action, request, attempt)
        return (response or {}).get('body') or {}

    def paginate(self, action, request, extract, token_of=None, raw=False):
        """Yield the items ``extract(body)`` returns for every page of ``action``.

        Sets ``MaxResults`` to the largest page the action allows and follows ``NextToken`` until it is empty or
        absent. ``request`` is not modified (pages use a copy). ``token_of(body)``: where the answer keeps its
        NextToken when not at the top (DescribeInvocationResults: ``body.invocation.next_token``).
        ``raw``: the pages are ``call_raw`` answers (dicts), their token ``NextToken``.
        """
        page_request = _copy_request(request)
        if hasattr(page_request, 'max_results'):
            page_request.max_results = MAX_PAGE_SIZE.get(action, DEFAULT_MAX_PAGE_SIZE)
        seen = set()
        for dummy in range(MAX_PAGES):
            body = self.call_raw(action, page_request) if raw else self.call(action, page_request)
            yield from extract(body) or ()
            if token_of is not None:
                token = token_of(body)
            else:
                token = body.get('NextToken') if raw else getattr(body, 'next_token', None)
            if not token:
                return
            if token in seen:
                raise CloudAssistantError('%s failed: the API returned the NextToken %r twice; stopping' % (action, token),
                                          action=action, kind='other')
            seen.add(token)
            page_request.next_token = token
        raise CloudAssistantError('%s failed: more than %d pages; stopping' % (action, MAX_PAGES), action=action,
                                  kind='other')


def build_api(opts, retry):
    """The API for ``opts`` (``_options.ConnectionOptions``) with ``retry`` (a ``RetryPolicy``): every module,
    plugin and benchmark builds it here. Raises ``CloudAssistantError`` for unusable options."""
    api = CloudAssistantApi(ecs_client(opts), opts.region_id, retry, runtime=runtime_settings(opts))
    api.warnings = transport_warnings(opts)
    return api


# -- requests -------------------------------------------------------------------------------------------------------
class _PlainRequest(object):
    """Stand-in for an SDK request model when the SDK is not importable (unit tests of pure logic)."""

    def __init__(self, _model_name, **fields):
        self.model_name = _model_name
        for key, value in fields.items():
            setattr(self, key, value)

    def __repr__(self):
        fields = dict((k, v) for k, v in vars(self).items() if k != 'model_name')
        return '%s(%r)' % (self.model_name, fields)


def make_request(model_name, **fields):
    """An SDK request model ``alibabacloud_ecs20140526.models.<model_name>`` with ``fields`` (None values dropped).

    ``RegionId`` is not needed: ``CloudAssistantApi.call`` fills it in.
    """
    fields = dict((k, v) for k, v in fields.items() if v is not None)
    if ecs_models is not None:
        return getattr(ecs_models, model_name)(**fields)
    return _PlainRequest(model_name, **fields)


def request_tags(model_name, tags):
    """``[<model_name>(key, value), ...]`` for a dict of tags, sorted by key (None when there are none); a value
    of None or '' is sent as ''."""
    return [make_request(model_name, key=k, value='' if v is None else str(v))
            for k, v in sorted((tags or {}).items())] or None


# -- answers --------------------------------------------------------------------------------------------------------
def _listed(body, holder, item):
    return list(getattr(getattr(body, holder, None), item, None) or [])


def invocations_of(body):
    """The invocation models of a DescribeInvocations answer."""
    return _listed(body, 'invocations', 'invocation')


def invocation_results_of(body):
    """The per-run records (InvocationResult) of a DescribeInvocationResults answer (note the extra
    ``Invocation`` wrapper)."""
    return _listed(getattr(body, 'invocation', None), 'invocation_results', 'invocation_result')


def invoke_instances(invocation):
    """The per-instance models (InvokeInstance) of an invocation model."""
    return _listed(invocation, 'invoke_instances', 'invoke_instance')


def instances_of(body):
    """The instance models of a DescribeInstances answer."""
    return _listed(body, 'instances', 'instance')


def raw_instances_of(body):
    """The instance records (the API's dicts) of a DescribeInstances answer from ``call_raw``."""
    holder = (body or {}).get('Instances') or {}
    return list(holder.get('Instance') or []) if isinstance(holder, dict) else []


def commands_of(body):
    """The command models of a DescribeCommands answer."""
    return _listed(body, 'commands', 'command')


def tags_of(model):
    """{key: value} of a model's ``tags.tag`` list (invocations, commands)."""
    return dict((t.tag_key, t.tag_value) for t in _listed(model, 'tags', 'tag'))


def _copy_request(request):
    """A copy of an SDK request model (``to_map``/``from_map``), or a shallow copy of anything else."""
    to_map = getattr(request, 'to_map', None)
    if callable(to_map):
        try:
            return type(request)().from_map(to_map())
        except Exception:  # pylint: disable=broad-except
            pass
    return copy.copy(request)
