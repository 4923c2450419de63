# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""What every module returns about instances: the one place a per-instance entry and a run's part of a task
result are shaped, and the failure message built from them.

- ``instance_entry``: one entry of ``instances`` (the same keys in every module of the collection);
- ``run_fields``: ``instances``, ``invoke_ids``, ``invoke_id`` and ``invocation_status`` of a task result;
- ``status_counts``: ``{'Success': 48, 'Failed': 2}``, a task result's ``summary``;
- ``failure_message``: ``'2 of 50 instances did not succeed: i-aaa (Failed, ExitCodeNonzero, exit 1), ...'``;
- ``wait_expired_message``: ``'wait_timeout (60 s) expired: 2 of 50 instances had not finished: i-aaa, i-bbb'``.
"""

from __future__ import annotations

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import SUCCESS, summarize

MAX_REPORTED_FAILURES = 5


def _empty_to_none(value):
    return None if value is None or value == '' else value


def instance_entry(instance_id, invoke_id=None, status=None, model=None, skipped=False, **extra):
    """The entry for one instance; ``model`` (an InvokeInstance model, its output already decoded) fills the
    status, exit code, output and times; ``extra`` sets or adds keys."""
    entry = {
        'instance_id': instance_id,
        'invoke_id': invoke_id,
        'invocation_status': status,
        'exit_code': None,
        'output': '',
        'dropped': 0,
        'error_code': None,
        'error_info': None,
        'start_time': None,
        'finish_time': None,
        'skipped': skipped,
    }
    if model is not None:
        entry['invocation_status'] = getattr(model, 'invocation_status', None) or status
        entry['exit_code'] = getattr(model, 'exit_code', None)
        entry['output'] = getattr(model, 'output', None) or ''
        entry['dropped'] = getattr(model, 'dropped', None) or 0
        for key in ('error_code', 'error_info', 'start_time', 'finish_time'):
            entry[key] = _empty_to_none(getattr(model, key, None))
    entry.update(extra)
    return entry


def overall_status(instances):
    """The overall status of the entries (``_status.summarize``)."""
    return summarize([entry['invocation_status'] for entry in instances])


def run_fields(instances, invoke_ids):
    """The keys of a task result that describe a run: ``instances`` (in target order), ``invoke_ids``,
    ``invoke_id`` (the first, or None) and ``invocation_status``."""
    invoke_ids = list(invoke_ids)
    return {
        'instances': instances,
        'invoke_ids': invoke_ids,
        'invoke_id': invoke_ids[0] if invoke_ids else None,
        'invocation_status': overall_status(instances),
    }


def status_counts(instances):
    """{status: number of entries} (a task result's ``summary``); entries without a status count as ``unknown``."""
    counts = {}
    for entry in instances:
        status = entry['invocation_status'] or 'unknown'
        counts[status] = counts.get(status, 0) + 1
    return counts


def listing(items, limit=10):
    """``'a, b, c and 7 more'``."""
    items = list(items)
    text = ', '.join(items[:limit])
    if len(items) > limit:
        text += ' and %d more' % (len(items) - limit)
    return text


def describe_failure(entry):
    details = [entry['invocation_status'] or 'unknown']
    if entry.get('error_code'):
        details.append(entry['error_code'])
    if entry['invocation_status'] == 'Failed' and entry.get('exit_code') is not None:
        details.append('exit %s' % entry['exit_code'])
    return '%s (%s)' % (entry['instance_id'], ', '.join(details))


def failure_message(instances):
    """None when every instance that ran reached Success; else how many did not, and the first five."""
    ran = [i for i in instances if not i['skipped']]
    bad = [i for i in ran if i['invocation_status'] != SUCCESS]
    if not bad:
        return None
    shown = ', '.join(describe_failure(i) for i in bad[:MAX_REPORTED_FAILURES])
    more = ' and %d more' % (len(bad) - MAX_REPORTED_FAILURES) if len(bad) > MAX_REPORTED_FAILURES else ''
    noun = 'instance' if len(ran) == 1 else 'instances'
    return '%d of %d %s did not succeed: %s%s' % (len(bad), len(ran), noun, shown, more)


def wait_expired_message(wait_timeout, unfinished, total, what='finished', note=''):
    """The message of a wait that ran out: ``unfinished`` (instance IDs) of ``total`` had not ``what``;
    ``note`` follows ``what`` (such as ``' (StopInvocation sent)'``)."""
    unfinished = list(unfinished)
    return ('wait_timeout (%d s) expired: %d of %d instances had not %s%s: %s'
            % (wait_timeout, len(unfinished), total, what, note, listing(unfinished)))
