# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An in-memory stand-in for the API object (``api.call`` / ``api.paginate``) for SendFile,
DescribeSendFileResults (filters InvokeId, Tag, InvocationStatus; TotalCount; MaxResults) and
DescribeCloudAssistantStatus, with knobs for what the real service may do: refuse a call, list tasks late
(``lag_polls``), leave an instance out of a task (``drop``), fail an instance (``fail``), keep tasks running."""

from __future__ import annotations

import threading
from types import SimpleNamespace as NS

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError


class FakeSendApi(object):
    def __init__(self, refuse=(), fail=None, drop=(), lag_polls=0, busy_polls=0, versions=None, total_count=True):
        self.lock = threading.Lock()
        self.requests = []
        self.tasks = []             # in creation order: dicts
        self.refuse = set(refuse)   # names (part names or file names) whose SendFile is refused
        self.fail = dict(fail or {})   # instance_id -> error code of its every task
        self.drop = set(drop)       # instance_ids no task ever lists
        self.lag_polls = lag_polls  # listings with a Tag filter show nothing for this many calls
        self.busy_polls = busy_polls   # tagged Running listings answer one task for this many calls
        self.versions = versions or {}
        self.total_count = total_count
        self.warnings = []          # as CloudAssistantApi: nothing to say about the transport
        self.calls = {}             # as CloudAssistantApi (counted there per action; not needed here)

    def actions(self, name):
        return [r for a, r in self.requests if a == name]

    def call(self, action, request):
        with self.lock:
            self.requests.append((action, request))
            return getattr(self, action)(request)

    def paginate(self, action, request, extract):
        return extract(self.call(action, request))

    # -- actions -------------------------------------------------------------------------------------------------
    def SendFile(self, request):
        if request.name in self.refuse:
            raise CloudAssistantError('refused', action='SendFile', code='FileSize.ExceedLimit')
        invoke_id = 'f-%04d' % (len(self.tasks) + 1)
        self.tasks.append({'invoke_id': invoke_id, 'tags': dict((t.key, t.value) for t in request.tag or []),
                           'instances': [i for i in request.instance_id if i not in self.drop], 'name': request.name})
        return NS(invoke_id=invoke_id)

    def _items(self, task):
        return [NS(instance_id=i, invocation_status='Failed' if i in self.fail else 'Success',
                   error_code=self.fail.get(i, ''), error_info='', start_time='', finish_time='')
                for i in task['instances']]

    @staticmethod
    def _overall(items):
        statuses = set(i.invocation_status for i in items)
        if statuses <= {'Success'}:
            return 'Success'
        return 'Failed' if 'Success' not in statuses else 'PartialFailed'

    def DescribeSendFileResults(self, request):
        tasks = list(self.tasks)
        if request.invoke_id:
            tasks = [t for t in tasks if t['invoke_id'] == request.invoke_id]
        for tag in request.tag or []:
            tasks = [t for t in tasks if t['tags'].get(tag.key) == tag.value]
            if self.lag_polls > 0:
                self.lag_polls -= 1
                tasks = []
        models = [NS(invoke_id=t['invoke_id'], invoke_instances=NS(invoke_instance=self._items(t)),
                     invocation_status=self._overall(self._items(t))) for t in tasks]
        if request.invocation_status == 'Running' and request.tag and self.busy_polls > 0:
            self.busy_polls -= 1
            models = models[:1]
        elif request.invocation_status is not None:
            models = [m for m in models if m.invocation_status == request.invocation_status]
        total = len(models) if self.total_count else None
        if request.max_results:
            models = models[:request.max_results]
        return NS(invocations=NS(invocation=models), total_count=total)

    def DescribeCloudAssistantStatus(self, request):
        items = [NS(instance_id=i, cloud_assistant_status='true', cloud_assistant_version=self.versions.get(i, '2.2.3.857'),
                    ostype='Linux', last_heartbeat_time='', last_invoked_time='', active_task_count=0,
                    invocation_count=0, support_session_manager=False) for i in request.instance_id]
        return NS(instance_cloud_assistant_status_set=NS(instance_cloud_assistant_status=items), next_token=None)
