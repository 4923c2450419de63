# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Reading, awaiting and stopping invocations (reference sections 2.4, 2.6, 3).

- ``describe_invocation`` / ``describe_tagged``: one invocation by ID, or every invocation with a tag.
  ``DescribeInvocations`` leaves out invocations that will run again (scheduled ones) unless ``Timed=true``:
  listings of schedules pass ``timed=True``.
- ``wait_for_invocations``: polls (``_poller``) until every instance of every invocation is terminal. Per poll,
  one DescribeInvocations per unfinished invocation, in parallel, or one tag-filtered DescribeInvocations when
  the invocations of one run share a tag.
- ``fetch_outputs``: once, at the end, with ``IncludeOutput=true`` and ``ContentEncoding=Base64`` (binary-safe),
  decoded here to text (UTF-8, undecodable bytes replaced).
- ``stop_instances`` / ``stop_live``: StopInvocation, 50 instances per call.
- ``list_invocations``: every invocation matching the API's filters, all pages, scheduled and one-time alike
  (two listings, ``Timed=true`` then ``Timed=false``, unless ``timed`` says which).
- ``describe_many``: several invocations by ID, in parallel, optionally with their decoded output.
- ``invocation_history`` / ``runs_by_instance``: the per-run records the API keeps for a scheduled invocation
  (DescribeInvocationResults with IncludeHistory), one list per instance, newest run first.
"""

from __future__ import annotations

import base64
import binascii
import time

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import (
    invocation_results_of,
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
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import poll
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import (
    PENDING,
    SCHEDULED,
    STOPPING,
    all_terminal,
    is_terminal,
)


CANCELLED = 'Cancelled'


class WaitResult(object):
    """``invocations``: {invoke_id: invocation model as last seen (statuses, no output), or None};
    ``timed_out``: the deadline passed with some instance not terminal; ``error``: the API error that ended the
    wait (None when it did not fail); ``polls``: polling rounds; ``unfinished``: invoke IDs not finished."""

    def __init__(self, invocations, polls, unfinished, error=None):
        self.invocations = invocations
        self.polls = polls
        self.unfinished = list(unfinished)
        self.error = error
        self.timed_out = bool(self.unfinished) and error is None


def invocation_finished(invocation, only=None):
    """True when every instance of the invocation is terminal (or, without instances, its overall status is).
    ``only``: the instance IDs that count (the others may still run)."""
    if invocation is None:
        return False
    instances = invoke_instances(invocation)
    if only is not None:
        wanted = set(only)
        instances = [i for i in instances if i.instance_id in wanted]
        if not instances:
            return True
    if not instances:
        return is_terminal(getattr(invocation, 'invocation_status', None))
    return all_terminal(i.invocation_status for i in instances)


def live_instances(invocation):
    """IDs of the instances of an invocation that may still run: neither terminal nor already Stopping."""
    return [i.instance_id for i in invoke_instances(invocation)
            if not is_terminal(i.invocation_status) and i.invocation_status != STOPPING]


def describe_invocation(api, invoke_id, include_output=False, timed=None, likely_timed=False):
    """The invocation model of ``invoke_id``, or None when the API does not list it.

    Without ``timed``, both kinds are asked for, the likelier first: ``Timed=false`` (one-time and ended
    invocations, the API's default) then ``Timed=true`` (a live schedule), or the other way round with
    ``likely_timed`` (the caller last saw a live schedule). Starting with ``Timed=false``, a miss by both is asked
    once more with ``Timed=false``: a schedule that ended between the first two calls is listed by neither, but
    by the third. Starting with ``Timed=true``, the second call already is that retry."""
    if timed is not None:
        flags = (timed,)
    elif likely_timed:
        flags = (True, None)
    else:
        flags = (None, True, None)
    for flag in flags:
        request = make_request('DescribeInvocationsRequest', invoke_id=invoke_id, timed=flag,
                               include_output=True if include_output else None,
                               content_encoding='Base64' if include_output else None)
        for invocation in invocations_of(api.call('DescribeInvocations', request)):
            if invocation.invoke_id == invoke_id:
                return invocation
    return None


def describe_tagged(api, tag, timed=None):
    """{invoke_id: invocation model} of every invocation with the tag ``tag`` ((key, value)), without output;
    ``timed=True`` lists the scheduled invocations that will run again (the API's default leaves them out)."""
    key, value = tag
    request = make_request('DescribeInvocationsRequest', timed=timed,
                           tag=[make_request('DescribeInvocationsRequestTag', key=key, value=value)])
    return dict((inv.invoke_id, inv) for inv in api.paginate('DescribeInvocations', request, invocations_of))


def _live_schedule(invocation):
    return bool(getattr(invocation, 'timed', None))


def wait_for_invocations(api, invoke_ids, deadline, schedule=None, clock=time.monotonic, sleep=time.sleep,
                         max_workers=8, started=None, group_tag=None, scope=None, refill=None, progress=None):
    """Poll until every instance of every invocation is terminal, the deadline (a ``clock()`` value) passes, or
    the API fails. ``group_tag``: a (key, value) tag every invocation carries, so that one tag-filtered
    DescribeInvocations asks for all of them (plus one per invocation that listing did not show yet). The
    invocations of one call are all one-time runs or all schedules (then the tag-filtered listing is not used).
    ``scope``: {invoke_id: instance IDs}; only these instances of that invocation are waited for.
    ``refill``: called after each poll with {invoke_id: model or None}; returns the IDs of invocations it started
    since (a rolling run's next instances), which are waited for too. ``progress``: called after each poll with
    {invoke_id: per-instance models} and ``scope`` (``_progress.ProgressFile``)."""
    latest = dict((iid, None) for iid in invoke_ids)
    scope = scope or {}

    def pending():
        return [iid for iid in latest if not invocation_finished(latest[iid], scope.get(iid))]

    def fetch():
        waiting = pending()
        listed = describe_tagged(api, group_tag) if group_tag and len(waiting) > 1 else {}
        missing = [iid for iid in waiting if iid not in listed]
        answers = run_concurrently(lambda iid: describe_invocation(api, iid, likely_timed=_live_schedule(latest[iid])),
                                   missing, max_workers=max_workers)
        listed.update((iid, inv) for iid, inv in zip(missing, answers) if inv is not None)
        for iid in waiting:
            if listed.get(iid) is not None:
                latest[iid] = listed[iid]
        if refill is not None:
            for iid in refill(latest):
                latest.setdefault(iid, None)
        if progress is not None:
            progress(dict((iid, invoke_instances(inv)) for iid, inv in latest.items() if inv is not None), scope)
        return latest

    outcome = poll(fetch, lambda _latest: not pending(), deadline, schedule=schedule, clock=clock, sleep=sleep,
                   started=started)
    return WaitResult(latest, outcome.polls, pending(), error=outcome.error)


def decode_output(value):
    """Base64 output (reference section 5) -> text; undecodable bytes become U+FFFD, so binary output stays
    readable. Text that is not valid Base64 is returned as it is."""
    if not value:
        return ''
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return value
    return raw.decode('utf-8', errors='replace')


def describe_many(api, invoke_ids, include_output=False, max_workers=8, likely_timed=None):
    """{invoke_id: invocation model, or None when the API does not list it}: one ``describe_invocation`` per ID,
    in parallel. With ``include_output`` the instances' ``output`` is decoded to text. ``likely_timed``: the IDs
    last seen as live schedules (asked for with ``Timed=true`` first)."""
    ids = list(dict.fromkeys(invoke_ids))
    timed_first = set(likely_timed or ())
    answers = run_concurrently(lambda iid: describe_invocation(api, iid, include_output=include_output,
                                                               likely_timed=iid in timed_first),
                               ids, max_workers=max_workers)
    if include_output:
        for invocation in answers:
            for item in invoke_instances(invocation):
                item.output = decode_output(item.output)
    return dict(zip(ids, answers))


def fetch_outputs(api, invoke_ids, max_workers=8):
    """{invoke_id: {instance_id: InvokeInstance model}} with ``output`` decoded to text: one DescribeInvocations
    with IncludeOutput=true per invocation (at most 100 instances, one answer), in parallel."""
    found = describe_many(api, invoke_ids, include_output=True, max_workers=max_workers)
    return dict((iid, dict((item.instance_id, item) for item in invoke_instances(invocation)))
                for iid, invocation in found.items())


TAG_FILTER_CAP = 1000   # DescribeInvocationsRequestTag: a tag-filtered listing returns at most 1,000 resources


def list_invocations(api, timed=None, tags=None, passes=None, **filters):
    """Every invocation DescribeInvocations lists with ``filters`` (its request fields: ``command_id``,
    ``command_name``, ``instance_id``, ``repeat_mode``, ...) and ``tags`` ({key: value}), all pages, without
    output. ``timed`` None lists both kinds: ``Timed=true`` (schedules that will run again) first, then
    ``Timed=false``, so a schedule that ends between the two listings is still seen (in the second). An
    invocation listed twice is kept once. ``passes``: a list to which (Timed value, number listed) is appended
    per listing - with ``tags`` the API lists at most ``TAG_FILTER_CAP`` per listing, silently."""
    found = {}
    for flag in ((timed,) if timed is not None else (True, False)):
        request = make_request('DescribeInvocationsRequest', timed=flag,
                               tag=request_tags('DescribeInvocationsRequestTag', tags), **filters)
        count = 0
        for invocation in api.paginate('DescribeInvocations', request, invocations_of):
            count += 1
            found.setdefault(invocation.invoke_id, invocation)
        if passes is not None:
            passes.append((flag, count))
    return list(found.values())


def _results_token(body):
    return getattr(getattr(body, 'invocation', None), 'next_token', None)


def invocation_history(api, invoke_id, instance_id=None):
    """Every per-run record (InvocationResult models, ``output`` decoded to text) DescribeInvocationResults keeps
    for ``invoke_id`` (on ``instance_id`` only, when given) with IncludeHistory=true, all pages. The API keeps a
    history for Period and EveryReboot invocations only; for others it answers with the current record of each
    instance."""
    request = make_request('DescribeInvocationResultsRequest', invoke_id=invoke_id, instance_id=instance_id,
                           include_history=True, content_encoding='Base64')
    records = list(api.paginate('DescribeInvocationResults', request, invocation_results_of, token_of=_results_token))
    for record in records:
        record.output = decode_output(record.output)
    return records


def _record_rank(record):
    """How much a record tells about its run: terminal over not, a run that happened (not ``Cancelled``) over a
    cancelled one, one with a finish time over one without."""
    status = getattr(record, 'invocation_status', None)
    return (is_terminal(status), status != CANCELLED, bool(getattr(record, 'finished_time', None)))


def runs_by_instance(records):
    """{instance_id: [record, ...]} of the records of runs (not the ``Pending``/``Scheduled`` placeholders of a
    run still to come), one per run (run number ``Repeats`` and ``StartTime``), newest first. When two records
    have the same run number, the one that tells more wins (``_record_rank``): a terminal record over the same
    run's current one, and the record of the last real run over the current row a stop turned ``Cancelled``
    (stopping a schedule keeps that row's ``Repeats`` and ``StartTime``)."""
    runs = {}
    for record in records:
        status = getattr(record, 'invocation_status', None)
        if status in (PENDING, SCHEDULED):
            continue
        per_instance = runs.setdefault(record.instance_id, {})
        number = (getattr(record, 'repeats', None) or 0, getattr(record, 'start_time', None) or '')
        if number not in per_instance or _record_rank(record) > _record_rank(per_instance[number]):
            per_instance[number] = record
    return dict((iid, [per_instance[n] for n in sorted(per_instance, reverse=True)])
                for iid, per_instance in runs.items())


def stop_instances(api, invoke_id, instance_ids, done=None):
    """StopInvocation for these instances of one invocation, 50 per call, one call after the other. ``done``: a
    list to which the IDs of each accepted call are added, so that a call failing part-way leaves the caller the
    instances already stopped (the error is raised)."""
    for part in chunks(list(instance_ids), BATCH_LIMITS['StopInvocation']):
        api.call('StopInvocation', make_request('StopInvocationRequest', invoke_id=invoke_id, instance_id=list(part)))
        if done is not None:
            done.extend(part)


def stop_live(api, invocation):
    """StopInvocation for the instances of ``invocation`` that may still run; returns their IDs."""
    live = live_instances(invocation)
    if live:
        stop_instances(api, invocation.invoke_id, live)
    return live
