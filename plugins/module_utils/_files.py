# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Sending files: SendFile requests and awaiting them with DescribeSendFileResults (reference 2.10, 2.11, 3.5).

::

    jobs = [SendJob(name, target_dir, data, instance_ids, mode='0600') ...]
    sent = send_files(api, jobs, transfer_id, salt, deadline)          # concurrently, 50 instances per call
    waited = wait_for_sends(api, transfer_id, deadline)                 # through _poller.poll
    failed = failed_sends(api, transfer_id)                            # {instance_id: (invoke_id, model)}

- Every SendFile of one transfer carries the tag ``FILE_TAG`` = the transfer ID and a ClientToken derived from
  the transfer, the part and the instances (``_tokens``), so a retried call never writes twice.
- ``wait_for_sends``: one poll asks for the tagged tasks whose overall status is still ``Pending`` or
  ``Running``, one entry each (``MaxResults=1``), so a poll costs two small calls whatever the number of parts
  (a DescribeSendFileResults answer carries each task's Content, up to 32 KB: listing every part on every poll
  would move megabytes).
- ``failed_sends``: once, at the end, the tagged tasks whose overall status is ``Failed`` or ``PartialFailed``
  (nothing to page through when every part arrived).
- ``send_results``: every tagged task (for transfers of one part, whose per-instance results are the result).
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

    def request(self, token, transfer_id, timeout=SEND_TIMEOUT):
        return make_request('SendFileRequest', instance_id=list(self.instance_ids), name=self.name,
                            target_dir=self.target_dir, content=base64.b64encode(self.data).decode('ascii'),
                            content_type='Base64', file_mode=self.mode, file_owner=self.owner,
                            file_group=self.group, overwrite=self.overwrite, timeout=timeout, client_token=token,
                            description='ansible cloud_assistant_file',
                            tag=request_tags('SendFileRequestTag', {FILE_TAG: transfer_id}))


class Sent(object):
    """What one SendFile call gave: ``invoke_id`` (``f-...``) or ``error`` (refused, or not sent before the
    deadline)."""

    def __init__(self, job, invoke_id=None, error=None):
        self.job = job
        self.invoke_id = invoke_id
        self.error = error


def send_files(api, jobs, transfer_id, salt, deadline, clock=time.monotonic, max_workers=SEND_WORKERS,
               timeout=SEND_TIMEOUT):
    """SendFile for every job (split into batches of 50 instances), ``max_workers`` at a time; a job not started
    before ``deadline`` is not sent. Returns one ``Sent`` per call, in job order; never raises for the API."""
    calls = [part for job in jobs for part in job.split()]

    def send(job):
        if clock() >= deadline:
            return Sent(job, error=CloudAssistantError('SendFile not sent: wait_timeout expired first',
                                                       action='SendFile', code='NotSent', kind='other'))
        token = client_token(['SendFile', transfer_id, job.target_dir, job.name] + job.instance_ids, salt)
        try:
            body = api.call('SendFile', job.request(token, transfer_id, timeout))
        except CloudAssistantError as exc:
            return Sent(job, error=exc)
        return Sent(job, invoke_id=getattr(body, 'invoke_id', None))

    return run_concurrently(send, calls, max_workers=max_workers)


def _tagged_request(transfer_id, status=None, max_results=None):
    return make_request('DescribeSendFileResultsRequest', invocation_status=status, max_results=max_results,
                        tag=[make_request('DescribeSendFileResultsRequestTag', key=FILE_TAG, value=transfer_id)])


def unfinished(api, transfer_id):
    """True while any task of the transfer is ``Pending`` or ``Running`` (two concurrent calls of one entry each)."""
    def any_with(status):
        return bool(invocations_of(api.call('DescribeSendFileResults', _tagged_request(transfer_id, status, 1))))

    return any(run_concurrently(any_with, UNFINISHED, max_workers=len(UNFINISHED)))


def wait_for_sends(api, transfer_id, deadline, schedule=None, clock=time.monotonic, sleep=time.sleep,
                   started=None):
    """Poll (``_poller.poll``) until no task of the transfer is Pending or Running, or ``deadline``."""
    return poll(lambda: unfinished(api, transfer_id), lambda busy: busy is False, deadline, schedule=schedule,
                clock=clock, sleep=sleep, started=started)


def send_results(api, transfer_id, statuses=None):
    """The transfer's tasks (DescribeSendFileResults models), all pages; ``statuses``: only these overall
    statuses."""
    def listed(status):
        return list(api.paginate('DescribeSendFileResults', _tagged_request(transfer_id, status), invocations_of))

    wanted = list(statuses or (None,))
    return [inv for part in run_concurrently(listed, wanted, max_workers=len(wanted)) for inv in part]


def failed_sends(api, transfer_id):
    """{instance_id: (invoke_id, InvokeInstance model)}: the first task of the transfer that did not reach
    Success on each instance."""
    failed = {}
    for invocation in send_results(api, transfer_id, FAILED):
        for item in invoke_instances(invocation):
            if item.invocation_status != SUCCESS and item.instance_id not in failed:
                failed[item.instance_id] = (invocation.invoke_id, item)
    return failed
