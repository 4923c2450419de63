# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_progress: the counts of a wait, the file they go to, and the wait that reports them."""

from __future__ import annotations

import json
import os

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._progress import (
    PROGRESS_ENV,
    ProgressFile,
    count_instances,
    progress_reporter,
    read_progress,
)


class Item(object):
    def __init__(self, instance_id, status):
        self.instance_id = instance_id
        self.invocation_status = status


def Invocation(invoke_id, *pairs):
    """{invoke_id: per-instance models}, what the wait hands over"""
    return {invoke_id: [Item(i, s) for i, s in pairs]}


def test_counts_finished_and_failed_over_every_invocation_in_scope():
    both = dict(Invocation('t-1', ('i-1', 'Success'), ('i-2', 'Running'), ('i-3', 'Failed')),
                **Invocation('t-2', ('i-4', 'Aborted'), ('i-5', 'Cancelled'), ('i-6', 'Pending')))
    assert count_instances(both) == (6, 4, 3)
    assert count_instances(both, scope={'t-2': ['i-6']}) == (4, 2, 1)
    assert count_instances({}) == (0, 0, 0)


def test_importing_it_does_not_import_the_sdk():
    # the action plugin imports this file in every task's worker on the controller: the SDK would cost ~0.3-1 s
    import subprocess
    import sys
    code = ('import sys; import ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._progress; '
            'print(sorted(m for m in sys.modules if m.startswith(("alibabacloud", "Tea"))))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.stdout.strip() == '[]'


def test_the_file_is_written_whole_and_only_when_a_count_changes(tmp_path):
    path = str(tmp_path / 'progress.json')
    now = [100.0]
    report = ProgressFile(path, clock=lambda: now[0])
    assert read_progress(path) is None
    report(Invocation('t-1', ('i-1', 'Running'), ('i-2', 'Running')))
    assert read_progress(path) == {'total': 2, 'finished': 0, 'failed': 0, 'elapsed': 0.0}
    os.remove(path)
    now[0] = 107.5
    report(Invocation('t-1', ('i-1', 'Running'), ('i-2', 'Running')))
    assert not os.path.exists(path)  # unchanged: not rewritten
    report(Invocation('t-1', ('i-1', 'Success'), ('i-2', 'Error')))
    assert json.loads(open(path).read()) == {'total': 2, 'finished': 2, 'failed': 1, 'elapsed': 7.5}
    assert os.listdir(str(tmp_path)) == ['progress.json']


def test_a_file_that_cannot_be_written_ends_the_reporting_not_the_wait(tmp_path):
    report = ProgressFile(str(tmp_path / 'missing-dir' / 'progress.json'))
    report(Invocation('t-1', ('i-1', 'Running')))
    assert report.broken
    report(Invocation('t-1', ('i-1', 'Success')))


def test_the_reporter_exists_only_when_the_variable_names_a_file(tmp_path):
    assert progress_reporter({}) is None
    assert progress_reporter({PROGRESS_ENV: ''}) is None
    assert progress_reporter({PROGRESS_ENV: str(tmp_path / 'p.json')}).path == str(tmp_path / 'p.json')


def test_unreadable_or_foreign_content_reads_as_nothing(tmp_path):
    path = tmp_path / 'p.json'
    path.write_text('{"total": 3')
    assert read_progress(str(path)) is None
    path.write_text('[1]')
    assert read_progress(str(path)) is None
