# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ``instances_table`` filter: any module's ``instances`` list as a text table and a line per instance that did
not succeed. Documentation: ``instances_table.yml`` beside this file (``ansible-doc -t filter``)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import (
    ACTIVE,
    NOT_RUN,
    SKIPPED,
    SUBMITTED,
    SUCCESS,
)

# Statuses that are not a failure: success, a guard that held (Skipped), check mode (NotRun), wait=false
# (Submitted), and no run at all (an agent query)
NOT_FAILED = frozenset((SUCCESS, SKIPPED, NOT_RUN, SUBMITTED, None, ''))
# Per-instance ErrorCode values that mean the command never reached a running agent (reference section 6)
UNREACHABLE_CODES = frozenset(('ClientNotRunning', 'ClientNotResponse', 'ClientIsUpgrading', 'ClientNeedUpgrade',
                               'InstanceNotRunning', 'InstanceNotExists', 'InstanceReleased', 'DeliveryTimeout'))
BASE_HEADERS = ('INSTANCE', 'NAME', 'REGION', 'STATUS', 'EXIT', 'DURATION')
NAME_KEYS = ('instance_name', 'name')
MISSING = '-'
MAX_REASON = 160


def _entries(data):
    """The per-instance entries of a list, a task result (``instances``) or a looped task result (``results``)."""
    if data is None:
        return []
    if isinstance(data, Mapping):
        if 'instances' in data:
            return _entries(data['instances'])
        if 'results' in data:
            found = []
            for item in data['results'] or []:
                if isinstance(item, Mapping) and 'instances' in item:
                    found.extend(_entries(item['instances']))
            return found
        raise AnsibleFilterError('instances_table: expected a list of instances or a registered task result with '
                                 'instances (or a looped one with results), got a dictionary with keys %s'
                                 % ', '.join(sorted(str(k) for k in data)))
    if isinstance(data, (str, bytes)) or not hasattr(data, '__iter__'):
        raise AnsibleFilterError('instances_table: expected a list of instances, got %s' % type(data).__name__)
    entries = list(data)
    for entry in entries:
        if not isinstance(entry, Mapping) or 'instance_id' not in entry:
            raise AnsibleFilterError('instances_table: every instance must be a dictionary with instance_id, got %r'
                                     % (entry,))
    return entries


def _details_by_id(details):
    """``details`` (a dict keyed by instance ID, or a list of dicts with ``instance_id``) as {instance_id: dict}."""
    if not details:
        return {}
    if isinstance(details, Mapping):
        return dict((str(k), v) for k, v in details.items() if isinstance(v, Mapping))
    found = {}
    for item in details:
        if isinstance(item, Mapping) and item.get('instance_id'):
            found[str(item['instance_id'])] = item
    return found


def _columns(columns):
    """[(header, key)] of the extra columns: a name, or a dict with ``key`` and optional ``header``."""
    found = []
    for column in columns or []:
        if isinstance(column, Mapping):
            if not column.get('key'):
                raise AnsibleFilterError('instances_table: columns - a column given as a dictionary needs key, got %r'
                                         % (dict(column),))
            found.append((str(column.get('header') or column['key']), str(column['key'])))
        elif isinstance(column, str) and column:
            found.append((column, column))
        else:
            raise AnsibleFilterError('instances_table: columns - each column is a key name or a dictionary with '
                                     'key and header, got %r' % (column,))
    return found


def parse_output(output):
    """The JSON object the command printed (its whole output, else its last non-empty line), or None."""
    if not output or not isinstance(output, str):
        return None
    text = output.strip().lstrip('\ufeff')   # PowerShell may start its output with a byte order mark
    candidates = [text]
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        candidates.append(lines[-1].strip())
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, Mapping):
            return value
    return None


def _lookup(value, key):
    """``key`` (dots for nesting) in ``value``; None when any part is missing."""
    for part in key.split('.'):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return None
    return value


def parse_time(value):
    """An API time (``2026-11-30T02:41:07Z``, with or without fractions or an offset) as an aware datetime."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith('Z'):
        text = text[:-1] + '+00:00'
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def duration_text(start_time, finish_time):
    """``'0.4 s'``, ``'12 s'``, ``'3 min 04 s'``, ``'2 h 05 min'``; ``'-'`` without both times."""
    start, finish = parse_time(start_time), parse_time(finish_time)
    if start is None or finish is None or finish < start:
        return MISSING
    seconds = (finish - start).total_seconds()
    if seconds < 10:
        return '%.1f s' % seconds
    whole = int(round(seconds))
    if whole < 60:
        return '%d s' % whole
    if whole < 3600:
        return '%d min %02d s' % (whole // 60, whole % 60)
    return '%d h %02d min' % (whole // 3600, whole % 3600 // 60)


def _cell(value, max_width):
    if value is None or value == '':
        return MISSING
    if isinstance(value, bool):
        text = 'true' if value else 'false'
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    text = ' '.join(text.split())
    if max_width and len(text) > max_width:
        text = text[:max(1, max_width - 3)] + '...'
    return text


def _short(text, limit=MAX_REASON):
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def reason(entry):
    """Why an instance did not succeed, in one line."""
    status = entry.get('invocation_status') or 'no status'
    parts = ['%s (not finished when the task stopped waiting)' % status if status in ACTIVE else status]
    if entry.get('error_code'):
        code = str(entry['error_code'])
        parts.append('%s (agent or instance not reachable)' % code if code in UNREACHABLE_CODES else code)
    if entry.get('exit_code') is not None and status != SUCCESS and not entry.get('error_code'):
        parts.append('exit %s' % entry['exit_code'])
    text = ', '.join(parts)
    detail = entry.get('error_info')
    if not detail and status != SUCCESS:
        lines = [line for line in str(entry.get('output') or '').splitlines() if line.strip()]
        detail = lines[-1] if lines else None
    if detail:
        text += ': %s' % detail
    return _short(text)


def _who(entry, name, region):
    extra = ', '.join(v for v in (name, region) if v != MISSING)
    return '%s (%s)' % (entry['instance_id'], extra) if extra else str(entry['instance_id'])


def _render(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ['  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


SORT_KEYS = {'instance': (0,), 'name': (1, 0), 'region': (2, 1, 0), 'status': (3, 2, 1, 0)}


def instances_table(data, columns=None, details=None, max_width=40, lines=False, sort_by=None):
    """The table (see instances_table.yml)."""
    if sort_by is not None and sort_by not in SORT_KEYS:
        raise AnsibleFilterError('instances_table: sort_by must be one of %s, got %r' % (', '.join(sorted(SORT_KEYS)), sort_by))
    if max_width is not None and (not isinstance(max_width, int) or isinstance(max_width, bool) or max_width < 4):
        raise AnsibleFilterError('instances_table: max_width must be an integer of at least 4, got %r' % (max_width,))
    entries = _entries(data)
    extra = _columns(columns)
    known = _details_by_id(details)
    body = []
    problems = []
    for entry in entries:
        info = known.get(str(entry['instance_id'])) or {}
        name = _cell(next((source.get(k) for source in (entry, info) for k in NAME_KEYS if source.get(k)), None),
                     max_width)
        region = _cell(entry.get('region_id') or info.get('region_id'), max_width)
        status = entry.get('invocation_status')
        parsed = parse_output(entry.get('output')) if extra else None
        row = [str(entry['instance_id']), name, region, _cell(status, max_width), _cell(entry.get('exit_code'), max_width),
               duration_text(entry.get('start_time'), entry.get('finish_time'))]
        for _header, key in extra:
            value = _lookup(parsed, key) if parsed is not None else None
            if value is None:
                value = _lookup(entry, key)
            if value is None:
                value = _lookup(info, key)
            row.append(_cell(value, max_width))
        body.append(row)
        if status not in NOT_FAILED or entry.get('error_code'):
            problems.append((row, '  %s: %s' % (_who(entry, name, region), reason(entry))))
    if sort_by:
        order = SORT_KEYS[sort_by]
        body.sort(key=lambda r: [r[i] for i in order])
        problems.sort(key=lambda p: [p[0][i] for i in order])
    out = _render([list(BASE_HEADERS) + [header for header, _key in extra]] + body)
    total = len(entries)
    if not total:
        out.append('(no instances)')
    elif problems:
        out.append('')
        out.append('%d of %d instance%s did not succeed:' % (len(problems), total, '' if total == 1 else 's'))
        out.extend(line for _row, line in problems)
    elif all(entry.get('invocation_status') == SUCCESS for entry in entries):
        out.append('')
        out.append('all %d instance%s succeeded' % (total, '' if total == 1 else 's'))
    else:
        out.append('')
        out.append('%d instance%s, no failure' % (total, '' if total == 1 else 's'))
    return out if lines else '\n'.join(out)


class FilterModule(object):

    def filters(self):
        return {'instances_table': instances_table}
