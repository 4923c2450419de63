# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SendFile requests and their wait, against a fake API object."""

from __future__ import annotations

import base64
import threading
from types import SimpleNamespace as NS

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._files import (
    FILE_TAG,
    SendJob,
    failed_sends,
    send_files,
    wait_for_sends,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import PollSchedule


class FakeApi:
    def __init__(self, refuse=None, busy_polls=0, failed=None):
        self.requests = []
        self.lock = threading.Lock()
        self.refuse = refuse or set()
        self.busy_polls = busy_polls
        self.failed = failed or []

    def call(self, action, request):
        with self.lock:
            self.requests.append((action, request))
            n = len(self.requests)
        if action == 'SendFile':
            if request.name in self.refuse:
                raise CloudAssistantError('refused', action=action, code='FileSize.ExceedLimit')
            return NS(invoke_id='f-%d' % n)
        assert action == 'DescribeSendFileResults'
        if self.busy_polls > 0 and request.invocation_status == 'Running':
            self.busy_polls -= 1
            return NS(invocations=NS(invocation=[NS(invoke_id='f-busy')]))
        return NS(invocations=NS(invocation=[]))

    def paginate(self, action, request, extract):
        with self.lock:
            self.requests.append((action, request))
        return [inv for inv in self.failed if request.invocation_status in (None, inv.invocation_status)]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def sends(api):
    return [r for a, r in api.requests if a == 'SendFile']


def test_one_call_per_part_and_batch_of_50_with_stable_tokens_and_the_tag():
    api = FakeApi()
    ids = ['i-%03d' % n for n in range(120)]
    jobs = [SendJob('p%06d' % n, '/d/.stage', b'x' * 10, ids, mode='0600') for n in range(3)]
    done = send_files(api, jobs, 'tid', 'salt', deadline=1e12)
    assert len(done) == 9 and all(s.invoke_id for s in done)
    requests = sends(api)
    assert sorted(len(r.instance_id) for r in requests) == [20, 20, 20, 50, 50, 50, 50, 50, 50]
    assert len(set(r.client_token for r in requests)) == 9
    assert all(r.content_type == 'Base64' and base64.b64decode(r.content) == b'x' * 10 for r in requests)
    assert all([(t.key, t.value) for t in r.tag] == [(FILE_TAG, 'tid')] for r in requests)
    again = FakeApi()
    send_files(again, jobs, 'tid', 'salt', deadline=1e12)
    assert sorted(r.client_token for r in sends(again)) == sorted(r.client_token for r in requests)


def test_refused_and_late_calls_are_reported_not_raised():
    api = FakeApi(refuse={'p000001'})
    jobs = [SendJob('p%06d' % n, '/d', b'x', ['i-1']) for n in range(2)]
    done = send_files(api, jobs, 'tid', 'salt', deadline=1e12)
    assert done[0].invoke_id and done[1].error.code == 'FileSize.ExceedLimit'
    late = send_files(FakeApi(), jobs, 'tid', 'salt', deadline=0, clock=lambda: 1.0)
    assert [s.error.code for s in late] == ['NotSent', 'NotSent']


def test_wait_polls_two_small_calls_until_nothing_is_pending_or_running():
    api = FakeApi(busy_polls=3)
    clock = Clock()
    outcome = wait_for_sends(api, 'tid', deadline=200.0, schedule=PollSchedule(), clock=clock, sleep=clock.sleep)
    assert outcome.done and outcome.polls == 4
    asked = [r for a, r in api.requests if a == 'DescribeSendFileResults']
    assert all(r.max_results == 1 for r in asked)
    assert sorted(r.invocation_status for r in asked[-2:]) == ['Pending', 'Running']


def test_wait_times_out():
    api = FakeApi(busy_polls=10 ** 6)
    clock = Clock()
    outcome = wait_for_sends(api, 'tid', deadline=105.0, clock=clock, sleep=clock.sleep)
    assert outcome.timed_out and not outcome.done


def item(iid, status, code=''):
    return NS(instance_id=iid, invocation_status=status, error_code=code)


def test_failed_sends_gives_one_failure_per_instance():
    failed = [NS(invoke_id='f-1', invocation_status='PartialFailed',
                 invoke_instances=NS(invoke_instance=[item('i-1', 'Success'), item('i-2', 'Failed', 'FileCreateFail')])),
              NS(invoke_id='f-2', invocation_status='Failed',
                 invoke_instances=NS(invoke_instance=[item('i-2', 'Failed', 'X'), item('i-3', 'Aborted', 'ClientNotRunning')]))]
    found = failed_sends(FakeApi(failed=failed), 'tid')
    assert sorted(found) == ['i-2', 'i-3']
    # fully failed tasks are listed first, then partly failed ones
    assert found['i-2'][0] == 'f-2' and found['i-2'][1].error_code == 'X'
    assert found['i-3'][1].error_code == 'ClientNotRunning'
