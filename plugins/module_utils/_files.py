# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Sending files: SendFile requests and awaiting them with DescribeSendFileResults (reference 2.10, 2.11, 3.5).

::

    jobs = [SendJob(name, target_dir, data, instance_ids, mode='0600') ...]
    sent = send_files(api, jobs, transfer_id, salt, deadline)          # concurrently, 50 instances per call
    counts = tag_counts(sent)                                          # {tag value: tasks created}
    waited = wait_for_sends(api, counts, deadline)                     # through _poller.poll
    failed = failed_sends(api, counts)                                 # {instance_id: (invoke_id, model)}
    models = send_results(api, [s.invoke_id for s in sent if s.invoke_id])   # {invoke_id: model or None}

- Every SendFile of one transfer carries the tag ``FILE_TAG`` = the transfer ID and the number of its group of
  ``TAG_GROUP`` calls (``tag_value``; one tag filter covers at most 1,000 tasks), and a ClientToken derived from
  the transfer, the part and the instances (``_tokens``), so a retried call never writes twice.
- ``wait_for_sends``: one poll asks, per tag value, for the count of tagged tasks and for the tasks still
  ``Pending`` or ``Running``, one entry each (``MaxResults=1``), so a poll costs three small calls per 1,000
  tasks whatever the number of parts (a DescribeSendFileResults answer carries each task's Content, up to
  32 KB: listing every part on every poll would move megabytes). The wait is over only when the listing counts
  every task the calls created and none is unfinished: a listing that lags behind does not end it early.
- ``failed_sends``: once, at the end, the tagged tasks whose overall status is ``Failed`` or ``PartialFailed``
  (nothing to page through when every part arrived). Staged transfers only: the assembly checks the parts
  anyway.
- ``send_results``: the tasks by their IDs, one call each (for files sent straight to ``dest``, whose
  per-instance results are the result; an instance a task does not list is the caller's error).
"""

from __future__ import annotations

import base64
import time

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import (
    invocations_of,
    invoke_instances,
    make_request,
    request_tags,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import (
    BATCH_LIMITS,
    chunks,
    run_concurrently,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import TAG_PREFIX
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import poll
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import SUCCESS
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._tokens import client_token

FILE_TAG = TAG_PREFIX + 'file'
UNFINISHED = ('Pending', 'Running')
FAILED = ('Failed', 'PartialFailed')
SEND_TIMEOUT = 60         # SendFile's own Timeout (the API default)
SEND_WORKERS = 16         # concurrent SendFile calls
TAG_GROUP = 1000          # tasks per tag value (one DescribeSendFileResults tag filter covers at most 1,000)
NOT_SENT = 'NotSent'      # the error code of a call not made because the deadline came first


class SendJob(object):
    """One file to write with SendFile on some instances: ``name`` in ``target_dir``, ``data`` (bytes, at most
    24 KB), ``mode``/``owner``/``group`` (None: the API default), ``overwrite``."""

    def __init__(self, name, target_dir, data, instance_ids, mode=None, owner=None, group=None, overwrite=True):
        self.name = name
        self.target_dir = target_dir
        self.data = data
        self.instance_ids = list(instance_ids)
        self.mode = mode
        self.owner = owner
        self.group = group
        self.overwrite = bool(overwrite)

    def split(self):
        """This job once per batch of 50 instances (SendFile's limit)."""
        return [SendJob(self.name, self.target_dir, self.data, part, self.mode, self.owner, self.group,
                        self.overwrite) for part in chunks(self.instance_ids, BATCH_LIMITS['SendFile'])]

    def request(self, token, tag, timeout=SEND_TIMEOUT):
        return make_request('SendFileRequest', instance_id=list(self.instance_ids), name=self.name,
                            target_dir=self.target_dir, content=base64.b64encode(self.data).decode('ascii'),
                            content_type='Base64', file_mode=self.mode, file_owner=self.owner,
                            file_group=self.group, overwrite=self.overwrite, timeout=timeout, client_token=token,
                            description='ansible cloud_assistant_file',
                            tag=request_tags('SendFileRequestTag', {FILE_TAG: tag}))


class Sent(object):
    """What one SendFile call gave: ``invoke_id`` (``f-...``) or ``error`` (refused, or not sent before the
    deadline: code ``NotSent``); ``tag``: the tag value the call carried."""

    def __init__(self, job, invoke_id=None, error=None, tag=None):
        self.job = job
        self.invoke_id = invoke_id
        self.error = error
        self.tag = tag

    @property
    def made(self):
        """Whether the call reached the API (created a task or was refused)."""
        return self.invoke_id is not None or getattr(self.error, 'code', None) != NOT_SENT


def tag_value(transfer_id, index):
    """The ``FILE_TAG`` value of the ``index``-th call of a transfer: one value per ``TAG_GROUP`` calls, because
    one tag filter of DescribeSendFileResults covers at most 1,000 tasks."""
    return '%s-%d' % (transfer_id, index // TAG_GROUP)


def send_files(api, jobs, transfer_id, salt, deadline, clock=time.monotonic, max_workers=SEND_WORKERS,
               timeout=SEND_TIMEOUT):
    """SendFile for every job (split into batches of 50 instances), ``max_workers`` at a time; a job not started
    before ``deadline`` is not sent. Returns one ``Sent`` per call, in job order; never raises for the API."""
    calls = list(enumerate(part for job in jobs for part in job.split()))

    def send(call):
        index, job = call
        tag = tag_value(transfer_id, index)
        if clock() >= deadline:
            return Sent(job, tag=tag, error=CloudAssistantError('SendFile not sent: wait_timeout expired first',
                                                                action='SendFile', code=NOT_SENT, kind='other'))
        token = client_token(['SendFile', transfer_id, job.target_dir, job.name] + job.instance_ids, salt)
        try:
            body = api.call('SendFile', job.request(token, tag, timeout))
        except CloudAssistantError as exc:
            return Sent(job, error=exc, tag=tag)
        return Sent(job, invoke_id=getattr(body, 'invoke_id', None), tag=tag)

    return run_concurrently(send, calls, max_workers=max_workers)


def tag_counts(sent):
    """{tag value: how many tasks the calls created under it}."""
    counts = {}
    for s in sent:
        if s.invoke_id:
            counts[s.tag] = counts.get(s.tag, 0) + 1
    return counts


def _tagged_request(value, status=None, max_results=None):
    return make_request('DescribeSendFileResultsRequest', invocation_status=status, max_results=max_results,
                        tag=[make_request('DescribeSendFileResultsRequestTag', key=FILE_TAG, value=value)])


def unfinished(api, counts, max_workers=8):
    """True while the transfer is not known to be over: for some tag value the listing has fewer tasks than the
    calls created (``TotalCount``; a listing that lags behind, or an answer without a count, is not taken as
    complete), or a task is still ``Pending`` or ``Running``. Three calls of one entry each per tag value."""
    def ask(query):
        value, status = query
        body = api.call('DescribeSendFileResults', _tagged_request(value, status, 1))
        if status is None:
            total = getattr(body, 'total_count', None)
            return total is None or int(total) < counts[value]
        return bool(invocations_of(body))

    queries = [(value, status) for value in sorted(counts) for status in (None,) + UNFINISHED]
    return any(run_concurrently(ask, queries, max_workers=max(1, min(max_workers, len(queries)))))


def wait_for_sends(api, counts, deadline, schedule=None, clock=time.monotonic, sleep=time.sleep, started=None):
    """Poll (``_poller.poll``) until every task the calls created (``counts``, from ``tag_counts``) is listed and
    none is Pending or Running, or ``deadline``."""
    return poll(lambda: unfinished(api, counts), lambda busy: busy is False, deadline, schedule=schedule,
                clock=clock, sleep=sleep, started=started)


def send_results(api, invoke_ids, max_workers=8):
    """{invoke_id: DescribeSendFileResults model, or None when the task is not listed}, one call per task."""
    def one(invoke_id):
        found = invocations_of(api.call('DescribeSendFileResults',
                                        make_request('DescribeSendFileResultsRequest', invoke_id=invoke_id)))
        return next((inv for inv in found if inv.invoke_id == invoke_id), None)

    ids = list(invoke_ids)
    if not ids:
        return {}
    return dict(zip(ids, run_concurrently(one, ids, max_workers=max(1, min(max_workers, len(ids))))))


def failed_sends(api, tags):
    """{instance_id: (invoke_id, InvokeInstance model)}: the first task under the tag values ``tags`` that did not
    reach Success on each instance (the listings of ``Failed`` and ``PartialFailed`` tasks, all pages)."""
    def listed(query):
        value, status = query
        return list(api.paginate('DescribeSendFileResults', _tagged_request(value, status), invocations_of))

    queries = [(value, status) for status in FAILED for value in sorted(tags)]
    failed = {}
    for part in run_concurrently(listed, queries, max_workers=max(1, min(8, len(queries)))):
        for invocation in part:
            for item in invoke_instances(invocation):
                if item.invocation_status != SUCCESS and item.instance_id not in failed:
                    failed[item.instance_id] = (invocation.invoke_id, item)
    return failed
