# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Waiting for Cloud Assistant invocations.

- ``PollSchedule``: every 0.2 s at first, then about 10% of the time already waited, capped; never below the floor.
- ``wait_for_invocations``: per poll, one DescribeInvocations (``InvokeId=...``, no output) per still-unfinished
  invocation, asked in parallel; or, when the invocations of one run share a tag (``group_tag``), one
  DescribeInvocations filtered by that tag for all of them (50 invocations a page). Stops when every instance of
  every invocation is in a terminal status (reference section 3.1) or the deadline passes.
- ``fetch_outputs``: once, at the end: one DescribeInvocations per invocation with ``IncludeOutput=true`` and
  ``ContentEncoding=Base64`` (binary-safe); the output is decoded here to text (UTF-8, undecodable bytes replaced).
"""

from __future__ import annotations

import base64
import binascii
import time

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import run_concurrently
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import all_terminal, is_terminal

try:
    from alibabacloud_ecs20140526 import models as ecs_models
    HAS_ECS_MODELS = True
except ImportError:  # pragma: no cover - exercised only without the SDK
    ecs_models = None
    HAS_ECS_MODELS = False


class _PlainRequest(object):
    """Stand-in for an SDK request model when the SDK is not importable (unit tests of pure logic)."""

    def __init__(self, _model_name, **fields):
        self.model_name = _model_name
        for key, value in fields.items():
            setattr(self, key, value)

    def __repr__(self):
        fields = dict((k, v) for k, v in vars(self).items() if k != 'model_name')
        return '%s(%r)' % (self.model_name, fields)


def make_request(model_name, api=None, **fields):
    """An SDK request model ``alibabacloud_ecs20140526.models.<model_name>`` with ``fields`` (None values dropped).

    ``region_id`` is filled from ``api.region_id`` when the API wrapper has one and it was not given.
    """
    fields = dict((k, v) for k, v in fields.items() if v is not None)
    if 'region_id' not in fields and getattr(api, 'region_id', None) and not model_name.endswith('Tag'):
        fields['region_id'] = api.region_id
    if HAS_ECS_MODELS:
        return getattr(ecs_models, model_name)(**fields)
    return _PlainRequest(model_name, **fields)


class PollSchedule(object):
    """Delay before the next poll: ``max(floor, min(cap, ratio * elapsed))``.

    With the defaults (0.2 s, 10%, 5 s) the first two seconds are polled every 0.2 s (short commands are seen as
    soon as they end), a run that ends after T seconds is seen at most about 10% of T late, and anything longer
    than 50 s is polled every 5 s: a 2 s command costs about 11 polls, a 60 s one about 45, a 10-minute one about
    150. The floor keeps DescribeInvocations at or below 5 calls per second per run whatever the caller asks for.
    """

    def __init__(self, floor=0.2, ratio=0.1, cap=5.0):
        if floor <= 0 or cap < floor or ratio < 0:
            raise ValueError('PollSchedule needs 0 < floor <= cap and ratio >= 0')
        self.floor = float(floor)
        self.ratio = float(ratio)
        self.cap = float(cap)

    def next_delay(self, elapsed, polls):
        return max(self.floor, min(self.cap, self.ratio * max(0.0, float(elapsed))))

    def __repr__(self):
        return 'PollSchedule(floor=%r, ratio=%r, cap=%r)' % (self.floor, self.ratio, self.cap)


class WaitResult(object):
    """``invocations``: {invoke_id: SDK invocation model as last seen (statuses, no output)};
    ``timed_out``: some invocation still had a non-terminal instance at the deadline; ``polls``: polling rounds;
    ``unfinished``: invoke IDs that were not finished."""

    def __init__(self, invocations, timed_out, polls, unfinished=None):
        self.invocations = invocations
        self.timed_out = timed_out
        self.polls = polls
        self.unfinished = list(unfinished or [])


def invoke_instances(invocation):
    """The InvokeInstance models of an SDK invocation model (empty list when absent)."""
    holder = getattr(invocation, 'invoke_instances', None)
    return list(getattr(holder, 'invoke_instance', None) or [])


def invocation_finished(invocation):
    """True when every instance of the invocation is terminal (and it has at least one)."""
    if invocation is None:
        return False
    instances = invoke_instances(invocation)
    if not instances:
        return is_terminal(getattr(invocation, 'invocation_status', None))
    return all_terminal(i.invocation_status for i in instances)


def invocations_of(body):
    """The invocation models of a DescribeInvocations answer (empty list when absent)."""
    holder = getattr(body, 'invocations', None)
    return list(getattr(holder, 'invocation', None) or [])


def describe_invocation(api, invoke_id, include_output=False):
    """One DescribeInvocations for one InvokeId; returns the SDK invocation model, or None when not found."""
    request = make_request('DescribeInvocationsRequest', api=api, invoke_id=invoke_id,
                           include_output=True if include_output else None,
                           content_encoding='Base64' if include_output else None)
    body = api.call('DescribeInvocations', request)
    for invocation in invocations_of(body):
        if invocation.invoke_id == invoke_id:
            return invocation
    return None


def describe_tagged(api, group_tag):
    """{invoke_id: SDK invocation model} of every invocation carrying the tag ``group_tag`` (key, value), without
    output: one DescribeInvocations per 50 invocations."""
    key, value = group_tag
    request = make_request('DescribeInvocationsRequest', api=api,
                           tag=[make_request('DescribeInvocationsRequestTag', key=key, value=value)])
    found = {}
    for invocation in api.paginate('DescribeInvocations', request, invocations_of):
        found[invocation.invoke_id] = invocation
    return found


def wait_for_invocations(api, invoke_ids, deadline, schedule=None, clock=time.monotonic, sleep=time.sleep,
                         max_workers=8, started=None, group_tag=None):
    """Poll until every instance of every invocation is terminal or ``deadline`` (a ``clock()`` value) passes.

    ``started`` is when the invocations were submitted (default: now); the schedule's ``elapsed`` counts from it.
    Each round sleeps ``schedule.next_delay(elapsed, polls)`` (cut short by the deadline), then asks for the
    unfinished invocations: with ``group_tag`` (a (key, value) tag every one of them carries) and more than one
    of them, with one tag-filtered DescribeInvocations (plus one per invocation the listing did not show yet);
    otherwise with one DescribeInvocations per invocation, in parallel. A last round is made at the deadline.
    """
    schedule = schedule if schedule is not None else PollSchedule()
    start = clock() if started is None else started
    latest = dict((iid, None) for iid in invoke_ids)
    pending = list(dict.fromkeys(invoke_ids))
    polls = 0
    while pending:
        now = clock()
        remaining = deadline - now
        if remaining <= 0:
            break
        delay = schedule.next_delay(now - start, polls)
        sleep(max(0.0, min(delay, remaining)))
        listed = describe_tagged(api, group_tag) if group_tag and len(pending) > 1 else {}
        missing = [iid for iid in pending if iid not in listed]
        results = run_concurrently(lambda iid: describe_invocation(api, iid), missing, max_workers=max_workers)
        listed.update((iid, invocation) for iid, invocation in zip(missing, results) if invocation is not None)
        polls += 1
        for iid in pending:
            if listed.get(iid) is not None:
                latest[iid] = listed[iid]
        pending = [iid for iid in pending if not invocation_finished(latest[iid])]
    return WaitResult(latest, bool(pending), polls, pending)


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


def fetch_outputs(api, invoke_ids, max_workers=8):
    """{invoke_id: {instance_id: SDK InvokeInstance}} with ``output`` decoded to text.

    One DescribeInvocations with IncludeOutput=true per invocation (an invocation holds at most 100 instances, all
    in one answer), the invocations asked in parallel.
    """
    ids = list(dict.fromkeys(invoke_ids))
    results = run_concurrently(lambda iid: describe_invocation(api, iid, include_output=True), ids,
                               max_workers=max_workers)
    out = {}
    for iid, invocation in zip(ids, results):
        per_instance = {}
        for item in invoke_instances(invocation):
            item.output = decode_output(item.output)
            per_instance[item.instance_id] = item
        out[iid] = per_instance
    return out
