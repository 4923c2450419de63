# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Which instances a task acts on: the one place that lists instances.

- ``describe_instances(api, ids=None, tags=None, fields=None)``: DescribeInstances, 100 IDs per call
  (concurrently) or every page of a tag filter (``Tag.N`` of DescribeInstances, not ``ResourceTag``, which caps a
  call at 100 instances); ``fields`` adds the request's other filters (the inventory plugin's ``filters``).
- ``resolve_targets(api, instance_ids=None, instance_tags=None, os_type=None, warn=None)``: the IDs to act on, in
  order, checked to exist, be Running and run ``os_type``; tagged instances that are not Running are left out
  with a warning (``running_only=False``: kept, whatever their status). Raises ``CloudAssistantError`` naming the
  option and the instances otherwise.
- ``agent_status(api, ids)``: DescribeCloudAssistantStatus, 100 per call; ``{instance_id: AgentStatus}`` (online,
  installed, version, heartbeat, task counts, OS, and what the version supports: ``_agent.AGENT_FEATURES``).
- ``offline_agents(api, ids)``: the IDs whose agent is not online, in order.
"""

from __future__ import annotations

import json

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._agent import agent_supports
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import (
    instances_of,
    make_request,
    raw_instances_of,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import (
    BATCH_LIMITS,
    chunks,
    run_concurrently,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import invalid
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._results import listing


class Targets(object):
    """``ids``: instance IDs in order; ``infos``: {instance_id: DescribeInstances model}."""

    def __init__(self, ids, infos):
        self.ids = list(ids)
        self.infos = infos

    def __len__(self):
        return len(self.ids)


def describe_instances(api, ids=None, tags=None, max_workers=8, fields=None, raw=False):
    """Instance models: of ``ids`` (missing ones are absent), or of every instance with all ``tags`` (a value of
    None or '' matches any value of the key). ``fields``: more DescribeInstancesRequest filters by their SDK
    names (``status``, ``zone_id``, ``vpc_id``, ``v_switch_id``, ...), sent with every call. ``raw``: the API's
    instance records (dicts with its field names) instead of models (``CloudAssistantApi.call_raw``), for a
    caller that lists many and keeps dicts (the inventory plugin)."""
    extract = raw_instances_of if raw else instances_of
    pages = {'raw': True} if raw else {}  # (test doubles of the API may not know the raw keyword)
    fields = dict(fields or {})
    selector = dict((k, None if v in (None, '') else v) for k, v in (tags or {}).items())
    tag_list = [make_request('DescribeInstancesRequestTag', key=k, value=None if v is None else str(v))
                for k, v in sorted(selector.items())]
    if ids is not None:
        def describe(part):
            request = make_request('DescribeInstancesRequest', instance_ids=json.dumps(part), tag=tag_list or None,
                                   **fields)
            return list(api.paginate('DescribeInstances', request, extract, **pages))
        parts = chunks(ids, BATCH_LIMITS['DescribeInstances'])
        return [model for models in run_concurrently(describe, parts, max_workers=max_workers) for model in models]
    request = make_request('DescribeInstancesRequest', tag=tag_list or None, **fields)
    return list(api.paginate('DescribeInstances', request, extract, **pages))


def resolve_targets(api, instance_ids=None, instance_tags=None, os_type=None, os_reason=None, warn=None,
                    max_workers=8, running_only=True):
    """A ``Targets`` (see the file's docstring). ``os_type``: 'linux' or 'windows' (None: any); ``os_reason``
    says why, in the error (for example 'type RunBatScript'). ``running_only=False`` keeps instances in any status
    (for a task that waits for them, such as instances still starting); ``infos[id].status`` tells which."""
    region = getattr(api, 'region_id', '?')
    if instance_ids is not None:
        wanted = list(dict.fromkeys(str(i).strip() for i in instance_ids))
        infos = dict((m.instance_id, m) for m in describe_instances(api, ids=wanted, max_workers=max_workers))
        missing = [i for i in wanted if i not in infos]
        if missing:
            raise invalid('instance_ids: %d instance(s) not found in region %s: %s'
                          % (len(missing), region, listing(missing)))
        idle = [i for i in wanted if infos[i].status != 'Running'] if running_only else []
        if idle:
            raise invalid('instance_ids: %d instance(s) are not Running: %s'
                          % (len(idle), listing(['%s (%s)' % (i, infos[i].status) for i in idle])))
        ids = wanted
    else:
        models = describe_instances(api, tags=instance_tags)
        if not models:
            raise invalid('instance_tags: no instance in region %s has the tags %s'
                          % (region, json.dumps(instance_tags, sort_keys=True, default=str)))
        infos = dict((m.instance_id, m) for m in models)
        idle = [m for m in models if m.status != 'Running'] if running_only else []
        if idle and warn is not None:
            warn('instance_tags: %d matching instance(s) left out because they are not Running: %s'
                 % (len(idle), listing(['%s (%s)' % (m.instance_id, m.status) for m in idle])))
        ids = [m.instance_id for m in models if m.status == 'Running' or not running_only]
        if not ids:
            raise invalid('instance_tags: none of the %d matching instances is Running' % len(models))
    if os_type is not None:
        wrong = [i for i in ids if (getattr(infos[i], 'ostype', None) or '').lower() not in ('', os_type)]
        if wrong:
            raise invalid('%s needs %s instances; %d target(s) run another OS: %s'
                          % (os_reason or 'this task', os_type.capitalize(), len(wrong),
                             listing(['%s (%s)' % (i, infos[i].ostype) for i in wrong])))
    return Targets(ids, infos)


class AgentStatus(object):
    """One instance's agent as DescribeCloudAssistantStatus reports it.

    ``online``: ``CloudAssistantStatus`` is true (a heartbeat within the last 2 minutes). ``installed``: online,
    or the agent reports a version, or a heartbeat was ever seen: the API gives no version for an agent that is
    installed but not running, so an agent stopped since its last heartbeat still counts as installed, and an
    instance never heard of counts as not installed. ``os_type``: lowercase (``linux``, ``windows``, ``freebsd``).
    ``known``: False when the answer left the instance out (``model`` None): then nothing is known of its agent,
    ``installed`` is None (neither installed nor missing) and ``online`` False.
    """

    def __init__(self, instance_id, model=None):
        self.instance_id = instance_id
        self.known = model is not None
        get = (lambda name: getattr(model, name, None)) if model is not None else (lambda name: None)
        self.online = str(get('cloud_assistant_status')).lower() == 'true'
        self.version = get('cloud_assistant_version') or None
        self.os_type = (get('ostype') or '').lower() or None
        self.last_heartbeat = get('last_heartbeat_time') or None
        self.last_invoked = get('last_invoked_time') or None
        self.active_task_count = int(get('active_task_count') or 0)
        self.invocation_count = int(get('invocation_count') or 0)
        self.support_session_manager = bool(get('support_session_manager'))
        self.installed = bool(self.online or self.version or self.last_heartbeat) if self.known else None

    def supports(self):
        features = agent_supports(self.version, self.os_type)
        features['session_manager'] = self.support_session_manager
        return features

    def fields(self):
        """The keys an ``instances`` entry carries about the agent (``_results.instance_entry(**fields)``)."""
        return {
            'installed': self.installed,
            'online': self.online,
            'agent_version': self.version,
            'os_type': self.os_type,
            'last_heartbeat': self.last_heartbeat,
            'last_invoked': self.last_invoked,
            'active_task_count': self.active_task_count,
            'invocation_count': self.invocation_count,
            'supports': self.supports(),
        }


def agent_status(api, ids, max_workers=8):
    """{instance_id: AgentStatus} for every ID of ``ids``. An instance the answer leaves out is not taken for one
    without an agent: its status is unknown (``AgentStatus.known`` False). With InstanceId given the service
    answers every match on one page (MaxResults is ignored); should an answer hold fewer items than asked for and
    carry a NextToken, the next pages are read too."""
    def describe(part):
        request = make_request('DescribeCloudAssistantStatusRequest', instance_id=list(part))
        items = []
        for dummy in range(len(part)):   # at most one page per instance: bounded whatever the service answers
            body = api.call('DescribeCloudAssistantStatus', request)
            holder = getattr(body, 'instance_cloud_assistant_status_set', None)
            items.extend(getattr(holder, 'instance_cloud_assistant_status', None) or [])
            token = getattr(body, 'next_token', None)
            if not token or len(items) >= len(part) or token == getattr(request, 'next_token', None):
                break
            request.next_token = token
        return items

    models = {}
    for items in run_concurrently(describe, chunks(ids, BATCH_LIMITS['DescribeCloudAssistantStatus']),
                                  max_workers=max_workers):
        models.update((item.instance_id, item) for item in items)
    return dict((i, AgentStatus(i, models.get(i))) for i in ids)


def offline_agents(api, ids, max_workers=8):
    """The IDs among ``ids`` whose Cloud Assistant agent is not online, in order."""
    status = agent_status(api, ids, max_workers=max_workers)
    return [i for i in ids if not status[i].online]
