# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SendFile requests and their wait, against a fake API object."""

from __future__ import annotations

import base64

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._files import (
    FILE_TAG,
    TAG_GROUP,
    SendJob,
    failed_sends,
    send_files,
    send_results,
    tag_counts,
    tag_value,
    wait_for_sends,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import PollSchedule
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.fake_sendfile import FakeSendApi  # noqa: E402


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_one_call_per_part_and_batch_of_50_with_stable_tokens_and_the_tag():
    api = FakeSendApi()
    ids = ['i-%03d' % n for n in range(120)]
    jobs = [SendJob('p%06d' % n, '/d/.stage', b'x' * 10, ids, mode='0600') for n in range(3)]
    done = send_files(api, jobs, 'tid', 'salt', deadline=1e12)
    assert len(done) == 9 and all(s.invoke_id and s.made for s in done)
    requests = api.actions('SendFile')
    assert sorted(len(r.instance_id) for r in requests) == [20, 20, 20, 50, 50, 50, 50, 50, 50]
    assert len(set(r.client_token for r in requests)) == 9
    assert all(r.content_type == 'Base64' and base64.b64decode(r.content) == b'x' * 10 for r in requests)
    assert all([(t.key, t.value) for t in r.tag] == [(FILE_TAG, 'tid-0')] for r in requests)
    assert tag_counts(done) == {'tid-0': 9}
    again = FakeSendApi()
    send_files(again, jobs, 'tid', 'salt', deadline=1e12)
    assert sorted(r.client_token for r in again.actions('SendFile')) == sorted(r.client_token for r in requests)


def test_one_tag_value_per_1000_calls():
    assert TAG_GROUP == 1000
    assert [tag_value('t', n) for n in (0, 999, 1000, 2500)] == ['t-0', 't-0', 't-1', 't-2']
    api = FakeSendApi()
    jobs = [SendJob('p%06d' % n, '/d', b'x', ['i-1']) for n in range(1001)]
    assert tag_counts(send_files(api, jobs, 'tid', 'salt', deadline=1e12, max_workers=4)) == {'tid-0': 1000, 'tid-1': 1}


def test_refused_and_late_calls_are_reported_not_raised():
    api = FakeSendApi(refuse={'p000001'})
    jobs = [SendJob('p%06d' % n, '/d', b'x', ['i-1']) for n in range(2)]
    done = send_files(api, jobs, 'tid', 'salt', deadline=1e12)
    assert done[0].invoke_id and done[1].error.code == 'FileSize.ExceedLimit' and done[1].made
    late = send_files(FakeSendApi(), jobs, 'tid', 'salt', deadline=0, clock=lambda: 1.0)
    assert [s.error.code for s in late] == ['NotSent', 'NotSent'] and not any(s.made for s in late)


def sent_to(api, count, ids=('i-1',)):
    jobs = [SendJob('p%06d' % n, '/d', b'x', list(ids)) for n in range(count)]
    return send_files(api, jobs, 'tid', 'salt', deadline=1e12)


def test_wait_polls_small_calls_until_nothing_is_pending_or_running():
    api = FakeSendApi(busy_polls=3)
    counts = tag_counts(sent_to(api, 4))
    clock = Clock()
    outcome = wait_for_sends(api, counts, deadline=200.0, schedule=PollSchedule(), clock=clock, sleep=clock.sleep)
    assert outcome.done and outcome.polls == 4
    asked = api.actions('DescribeSendFileResults')
    assert all(r.max_results == 1 for r in asked) and len(asked) == 3 * 4
    assert sorted(str(r.invocation_status) for r in asked[-3:]) == ['None', 'Pending', 'Running']


def test_a_listing_that_lags_behind_does_not_end_the_wait():
    """Review finding 3: an empty tag listing right after the sends is not 'nothing pending'."""
    api = FakeSendApi(lag_polls=6)          # the first two polls (three listings each) show nothing
    counts = tag_counts(sent_to(api, 2))
    clock = Clock()
    outcome = wait_for_sends(api, counts, deadline=200.0, schedule=PollSchedule(), clock=clock, sleep=clock.sleep)
    assert outcome.done and outcome.polls == 3


def test_an_answer_without_a_count_is_not_taken_as_complete():
    api = FakeSendApi(total_count=False)
    counts = tag_counts(sent_to(api, 1))
    clock = Clock()
    outcome = wait_for_sends(api, counts, deadline=110.0, clock=clock, sleep=clock.sleep)
    assert outcome.timed_out and not outcome.done


def test_wait_times_out():
    api = FakeSendApi(busy_polls=10 ** 6)
    counts = tag_counts(sent_to(api, 1))
    clock = Clock()
    outcome = wait_for_sends(api, counts, deadline=105.0, clock=clock, sleep=clock.sleep)
    assert outcome.timed_out and not outcome.done


def test_failed_sends_gives_one_failure_per_instance_for_every_tag_value():
    api = FakeSendApi(fail={'i-2': 'FileCreateFail', 'i-3': 'ClientNotRunning'})
    sent = sent_to(api, 2, ids=('i-1', 'i-2', 'i-3'))
    found = failed_sends(api, {'tid-0': 2, 'tid-1': 0})
    assert sorted(found) == ['i-2', 'i-3']
    assert found['i-2'][0] == sent[0].invoke_id and found['i-2'][1].error_code == 'FileCreateFail'
    assert found['i-3'][1].error_code == 'ClientNotRunning'
    assert sorted(r.tag[0].value for r in api.actions('DescribeSendFileResults')) == ['tid-0', 'tid-0', 'tid-1', 'tid-1']


def test_send_results_reads_each_task_by_its_id():
    api = FakeSendApi(drop={'i-2'})
    sent = sent_to(api, 2, ids=('i-1', 'i-2'))
    models = send_results(api, [s.invoke_id for s in sent] + ['f-none'])
    assert [i.instance_id for i in models[sent[0].invoke_id].invoke_instances.invoke_instance] == ['i-1']
    assert models['f-none'] is None
    assert all(r.invoke_id and not r.tag for r in api.actions('DescribeSendFileResults'))
