# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._run_memory import RunMemory


def test_what_one_task_keeps_the_next_one_reads(tmp_path):
    RunMemory('i-abc123', str(tmp_path)).put('home root echo ~', '/root\n')
    later = RunMemory('i-abc123', str(tmp_path))
    assert later.get('home root echo ~') == '/root\n'
    assert later.get('other') is None
    assert RunMemory('i-other1', str(tmp_path)).get('home root echo ~') is None
    assert os.listdir(str(tmp_path)) == ['cloud_assistant-i-abc123.json']


def test_a_damaged_file_or_no_directory_only_misses(tmp_path):
    (tmp_path / 'cloud_assistant-i-abc123.json').write_text('{not json')
    memory = RunMemory('i-abc123', str(tmp_path))
    assert memory.get('k') is None
    memory.put('k', 'v')
    assert memory.get('k') == 'v'
    nowhere = RunMemory('i-abc123', str(tmp_path / 'missing'))
    nowhere.put('k', 'v')
    assert nowhere.get('k') is None
    assert RunMemory('../etc', str(tmp_path)).path is None    # never a path outside the directory


def test_the_default_directory_is_this_runs_local_temporary_directory(tmp_path, monkeypatch):
    from ansible import constants as C
    monkeypatch.setattr(C, 'DEFAULT_LOCAL_TMP', str(tmp_path), raising=False)
    assert RunMemory('i-abc123').path == str(tmp_path / 'cloud_assistant-i-abc123.json')
