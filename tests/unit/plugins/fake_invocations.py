# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An in-memory stand-in for the SDK client at its method boundary, for DescribeInvocations,
DescribeInvocationResults and StopInvocation: answers are real SDK response models built from the API's JSON
shape, pages follow MaxResults/NextToken, so the collection's paging, filters and model reading are exercised."""

from __future__ import annotations

import base64
import threading
import time

from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi import exceptions as sdk_exceptions

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import CloudAssistantApi
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import RetryPolicy

TERMINAL = ('Success', 'Failed', 'Invalid', 'Aborted', 'Error', 'Timeout', 'Cancelled', 'Terminated')


class Response(object):
    def __init__(self, body):
        self.status_code = 200
        self.headers = {}
        self.body = body


def b64(text):
    return base64.b64encode(text.encode('utf-8')).decode('ascii')


def invocation(invoke_id, statuses, repeat_mode='Once', created='2026-11-22T01:00:00Z', tags=None, command_id=None,
               command_name='', outputs=None, timeout=60):
    """One invocation in the API's JSON shape; ``statuses`` is {instance_id: status}."""
    return {
        'InvokeId': invoke_id, 'CommandId': command_id or 'c-' + invoke_id[2:], 'CommandName': command_name,
        'CommandType': 'RunShellScript', 'CommandContent': b64('echo hi'), 'Parameters': '{"a": "1"}',
        'RepeatMode': repeat_mode, 'Frequency': '', 'Timeout': timeout, 'WorkingDir': '/root', 'Username': 'root',
        'CreationTime': created, 'Tags': {'Tag': [{'TagKey': k, 'TagValue': v} for k, v in (tags or {}).items()]},
        'InvokeInstances': {'InvokeInstance': [
            {'InstanceId': iid, 'InvocationStatus': st, 'ExitCode': 0 if st == 'Success' else None, 'Dropped': 0,
             'Output': b64((outputs or {}).get(iid, 'out-%s\n' % iid)), 'Repeats': 1}
            for iid, st in statuses.items()]},
    }


def api_error(code, status=400):
    """What the SDK raises for an API error answer (4xx: not retried)."""
    return sdk_exceptions.ClientException(status_code=status, code=code, message='Message for %s' % code,
                                          data={'Code': code, 'Message': 'Message for %s' % code, 'RequestId': 'R-1'},
                                          request_id='R-1')


class FakeClock(object):
    """A monotonic clock that moves only when slept on."""

    def __init__(self, start=0.0):
        self.now = float(start)
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def overall(statuses):
    for active in ('Pending', 'Scheduled', 'Running', 'Stopping'):
        if active in statuses:
            return active
    if all(s in ('Cancelled', 'Terminated') for s in statuses):
        return 'Stopped'
    return 'Success' if all(s == 'Success' for s in statuses) else 'Failed'


class FakeEcs(object):
    """``invocations``: {invoke_id: JSON}; ``history``: {invoke_id: [InvocationResult JSON]}.

    StopInvocation turns a ``Running`` row ``Stopping``; the DescribeInvocations after the one that first shows
    it so sees it ``Terminated``. ``fail``: {action: {call number (1-based): error}} makes that call raise;
    ``hook(action, n)`` runs before the n-th call of an action (a change the service makes meanwhile);
    ``absent_token``: the last page has no NextToken at all (rather than an empty one)."""

    def __init__(self, invocations=(), history=None, ignore_with_instance=('CommandName', 'RepeatMode'),
                 fail=None, hook=None, absent_token=False):
        self.invocations = dict((inv['InvokeId'], inv) for inv in invocations)
        self.history = history or {}
        self.ignore_with_instance = ignore_with_instance
        self.requests = []
        self.lock = threading.Lock()
        self.fail = fail or {}
        self.hook = hook
        self.absent_token = absent_token
        self.stopping = {}   # (invoke_id, instance_id) -> DescribeInvocations answers still showing Stopping

    def _log(self, action, request):
        with self.lock:
            self.requests.append((action, request.to_map()))
            number = len(self.calls(action))
        if self.hook is not None:
            self.hook(action, number)
        error = self.fail.get(action, {}).get(number)
        if error is not None:
            raise error

    def _rows(self):
        return dict(((inv['InvokeId'], row['InstanceId']), row) for inv in self.invocations.values()
                    for row in inv['InvokeInstances']['InvokeInstance'])

    def _advance_stopping(self):
        rows = self._rows()
        for key, left in list(self.stopping.items()):
            if left <= 0:
                rows[key]['InvocationStatus'] = 'Terminated'
                del self.stopping[key]
            else:
                self.stopping[key] = left - 1

    def calls(self, action):
        return [r for a, r in self.requests if a == action]

    @staticmethod
    def _timed(inv):
        return inv['RepeatMode'] != 'Once' and any(
            i['InvocationStatus'] not in TERMINAL for i in inv['InvokeInstances']['InvokeInstance'])

    def _page(self, items, request):
        size = request.max_results or 10
        start = int(request.next_token or 0)
        page = items[start:start + size]
        token = str(start + size) if start + size < len(items) else ''
        return page, token

    def describe_invocations_with_options(self, request, runtime):
        self._log('DescribeInvocations', request)
        with self.lock:
            self._advance_stopping()
        with_instance = request.instance_id is not None
        found = []
        for inv in sorted(self.invocations.values(), key=lambda i: i['CreationTime'], reverse=True):
            members = dict((i['InstanceId'], i) for i in inv['InvokeInstances']['InvokeInstance'])
            if request.invoke_id and inv['InvokeId'] != request.invoke_id:
                continue
            if request.command_id and inv['CommandId'] != request.command_id:
                continue
            if request.command_name and 'CommandName' not in (self.ignore_with_instance if with_instance else ()):
                if inv['CommandName'] != request.command_name:
                    continue
            if request.repeat_mode and 'RepeatMode' not in (self.ignore_with_instance if with_instance else ()):
                if inv['RepeatMode'] != request.repeat_mode:
                    continue
            if with_instance and request.instance_id not in members:
                continue
            if bool(request.timed) != self._timed(inv):
                continue
            tags = dict((t['TagKey'], t['TagValue']) for t in inv['Tags']['Tag'])
            if any(tags.get(t.key) != t.value for t in (request.tag or [])):
                continue
            shown = dict(inv)
            rows = [dict(r) for r in inv['InvokeInstances']['InvokeInstance']
                    if not with_instance or r['InstanceId'] == request.instance_id]
            for row in rows:
                if not request.include_output:
                    row.pop('Output', None)
            shown['InvokeInstances'] = {'InvokeInstance': rows}
            shown['InvocationStatus'] = overall([r['InvocationStatus'] for r in rows])
            shown['Timed'] = self._timed(inv)
            found.append(shown)
        page, token = self._page(found, request)
        body = {'RequestId': 'R', 'NextToken': token, 'Invocations': {'Invocation': page}}
        if self.absent_token and not token:
            del body['NextToken']
        return Response(ecs_models.DescribeInvocationsResponseBody().from_map(body))

    def describe_invocation_results_with_options(self, request, runtime):
        self._log('DescribeInvocationResults', request)
        records = [r for r in (self.history.get(request.invoke_id, []) if request.include_history else [])
                   if request.instance_id is None or r['InstanceId'] == request.instance_id]
        page, token = self._page(records, request)
        body = {'RequestId': 'R', 'Invocation': {'NextToken': token, 'InvocationResults': {'InvocationResult': page}}}
        if self.absent_token and not token:
            del body['Invocation']['NextToken']
        return Response(ecs_models.DescribeInvocationResultsResponseBody().from_map(body))

    def stop_invocation_with_options(self, request, runtime):
        self._log('StopInvocation', request)
        assert len(request.instance_id or []) <= 50, 'StopInvocation takes at most 50 instances'
        inv = self.invocations[request.invoke_id]
        for row in inv['InvokeInstances']['InvokeInstance']:
            if request.instance_id and row['InstanceId'] not in request.instance_id:
                continue
            if row['InvocationStatus'] in ('Pending', 'Scheduled'):
                row['InvocationStatus'] = 'Cancelled'
            elif row['InvocationStatus'] == 'Running':
                row['InvocationStatus'] = 'Stopping'
                with self.lock:
                    self.stopping[(request.invoke_id, row['InstanceId'])] = 1
        return Response(ecs_models.StopInvocationResponseBody().from_map({'RequestId': 'R'}))


def api_for(client):
    return CloudAssistantApi(client, 'cn-test', RetryPolicy(deadline=None, sleep=lambda s: None, rng=lambda: 0.0))


class FakeModule(object):
    """What a resource class needs of ``CloudAssistantModule``."""

    def __init__(self, client, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.started = time.monotonic()
        self._api = api_for(client)
        self.warnings = []

    def api(self, deadline):
        return self._api.with_deadline(deadline)

    def warn(self, message):
        self.warnings.append(message)
