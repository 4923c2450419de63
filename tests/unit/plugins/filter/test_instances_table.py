# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The instances_table filter: columns, key figures from JSON output, names and regions, failure lines."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.alicloud_ops.cloud_assistant.plugins.filter.instances_table import (
    FilterModule,
    duration_text,
    instances_table,
    parse_output,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._results import instance_entry


class Model(object):
    def __init__(self, **fields):
        self.__dict__.update(fields)


def ok(instance_id, output, start='2026-11-30T02:00:00Z', finish='2026-11-30T02:00:00.400Z'):
    model = Model(invocation_status='Success', exit_code=0, output=output, start_time=start, finish_time=finish)
    return instance_entry(instance_id, invoke_id='t-1', model=model)


def cells(line):
    return line.split()


def test_rows_columns_and_key_figures_from_json_output():
    entries = [ok('i-1', '{"load1": 0.12, "disk": {"used_pct": 41}}\n'),
               ok('i-2', 'warming up\n{"load1": 1.5, "disk": {"used_pct": 93}}\n')]
    lines = instances_table(entries, columns=['load1', {'key': 'disk.used_pct', 'header': 'DISK%'}],
                            details={'i-1': {'instance_name': 'web-1', 'region_id': 'cn-hangzhou'}}, lines=True)
    assert cells(lines[0]) == ['INSTANCE', 'NAME', 'REGION', 'STATUS', 'EXIT', 'DURATION', 'load1', 'DISK%']
    assert cells(lines[1]) == ['i-1', 'web-1', 'cn-hangzhou', 'Success', '0', '0.4', 's', '0.12', '41']
    assert cells(lines[2]) == ['i-2', '-', '-', 'Success', '0', '0.4', 's', '1.5', '93']
    assert lines[-1] == 'all 2 instances succeeded'
    # the columns line up: every value starts where its header starts
    assert lines[1].index('cn-hangzhou') == lines[0].index('REGION')
    assert lines[2].index('93') == lines[0].index('DISK%')


def test_one_line_per_instance_that_did_not_succeed_and_why():
    down = instance_entry('i-down', invoke_id='t-1', model=Model(
        invocation_status='Aborted', error_code='ClientNotRunning', error_info='the aliyun service is not running'))
    failed = instance_entry('i-bad', invoke_id='t-1', model=Model(
        invocation_status='Failed', exit_code=3, output='trying\ndf: /: no such device\n', error_code='', start_time=None))
    late = instance_entry('i-slow', invoke_id='t-1', status='Running')
    text = instances_table([ok('i-1', '{}'), down, failed, late],
                           details=[{'instance_id': 'i-down', 'instance_name': 'db', 'region_id': 'cn-beijing'}])
    assert '\n3 of 4 instances did not succeed:\n' in text
    assert ('  i-down (db, cn-beijing): Aborted, ClientNotRunning (agent or instance not reachable): '
            'the aliyun service is not running') in text.splitlines()
    assert '  i-bad: Failed, exit 3: df: /: no such device' in text.splitlines()
    assert '  i-slow: Running (not finished when the task stopped waiting)' in text.splitlines()
    assert 'i-1:' not in text


def test_registered_result_and_looped_results_are_accepted():
    one = {'changed': False, 'instances': [ok('i-1', '')]}
    looped = {'results': [one, {'skipped': True, 'item': 'cn-beijing'}, {'instances': [ok('i-2', '')]}]}
    assert [cells(line)[0] for line in instances_table(looped, lines=True)[1:3]] == ['i-1', 'i-2']
    assert instances_table(one) == instances_table(one['instances'])
    assert instances_table([], lines=True)[-1] == '(no instances)'


def test_entries_without_a_run_are_not_failures_and_entry_keys_are_columns():
    agents = [instance_entry('i-1', online=True, agent_version='2.2.3'),
              instance_entry('i-2', online=False, agent_version=None)]
    lines = instances_table(agents, columns=['online', 'agent_version'], lines=True)
    assert cells(lines[1])[-2:] == ['true', '2.2.3']
    assert cells(lines[2])[-2:] == ['false', '-']
    assert lines[-1] == '2 instances, no failure'


def test_rows_and_failure_lines_sorted_by_region_then_name():
    bad = instance_entry('i-0', status='Failed', exit_code=1)
    entries = [ok('i-3', ''), bad, ok('i-2', ''), ok('i-1', '')]
    details = {'i-3': {'region_id': 'b', 'instance_name': 'x'}, 'i-0': {'region_id': 'b', 'instance_name': 'a'},
               'i-2': {'region_id': 'a', 'instance_name': 'z'}, 'i-1': {'region_id': 'a', 'instance_name': 'z'}}
    lines = instances_table(entries, details=details, sort_by='region', lines=True)
    assert [cells(line)[0] for line in lines[1:5]] == ['i-1', 'i-2', 'i-0', 'i-3']
    assert [cells(line)[0] for line in instances_table(entries, sort_by='instance', lines=True)[1:5]] == \
        ['i-0', 'i-1', 'i-2', 'i-3']


def test_long_cells_are_cut_and_missing_figures_are_dashes():
    entry = ok('i-1', '{"note": "%s"}' % ('x' * 100))
    line = instances_table([entry], columns=['note', 'absent'], max_width=10, lines=True)[1]
    assert cells(line)[-2:] == ['xxxxxxx...', '-']


@pytest.mark.parametrize('start, finish, text', [
    ('2026-11-30T02:00:00Z', '2026-11-30T02:00:12Z', '12 s'),
    ('2026-11-30T02:00:00Z', '2026-11-30T02:03:04Z', '3 min 04 s'),
    ('2026-11-30T02:00:00+08:00', '2026-11-30T04:05:00+08:00', '2 h 05 min'),
    ('2026-11-30T02:00:00Z', None, '-'),
    ('garbage', '2026-11-30T02:00:00Z', '-'),
    ('2026-11-30T02:00:09Z', '2026-11-30T02:00:00Z', '-'),
])
def test_duration(start, finish, text):
    assert duration_text(start, finish) == text


def test_parse_output():
    assert parse_output('{"a": 1}') == {'a': 1}
    assert parse_output('noise\n{"a": 2}\n\n') == {'a': 2}
    assert parse_output('\ufeff{"a": 3}\r\n') == {'a': 3}
    assert parse_output('[1, 2]') is None
    assert parse_output('not json') is None
    assert parse_output(None) is None


@pytest.mark.parametrize('data, message', [
    ({'msg': 'x'}, 'registered task result'),
    ('i-1', 'expected a list'),
    ([{'status': 'Success'}], 'instance_id'),
])
def test_bad_input_is_named(data, message):
    with pytest.raises(AnsibleFilterError, match=message):
        instances_table(data)


@pytest.mark.parametrize('kwargs, message', [
    (dict(columns=[{'header': 'X'}]), 'needs key'),
    (dict(columns=[3]), 'key name or a dictionary'),
    (dict(max_width=2), 'max_width'),
    (dict(sort_by='colour'), 'sort_by must be one of instance, name, region, status'),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        instances_table([ok('i-1', '')], **kwargs)


def test_the_filter_is_registered():
    assert FilterModule().filters()['instances_table'] is instances_table
