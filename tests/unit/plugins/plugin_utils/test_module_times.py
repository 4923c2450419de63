# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils import _module_times as mt


def test_the_shortest_of_the_last_runs_is_kept_across_instances_of_the_file(tmp_path):
    times = mt.ModuleTimes('i-abc123', str(tmp_path))
    assert times.seconds('ansible/modules/ping.py') is None
    runs = [90, 120] + [300, 250] * mt.KEPT
    for ms in runs:
        times.record('ansible/modules/ping.py', ms)
    later = mt.ModuleTimes('i-abc123', str(tmp_path))             # the next task's connection (or the next run)
    assert later.seconds('ansible/modules/ping.py') == 0.25     # 90 and 120 dropped out; the shortest of the last
    assert json.loads((tmp_path / mt.DIR_NAME / 'i-abc123.json').read_text()) == {'ansible/modules/ping.py': runs[-mt.KEPT:]}


def test_the_last_lag_is_kept_for_the_next_run(tmp_path):
    times = mt.ModuleTimes('i-abc123', str(tmp_path))
    assert times.lag() is None
    times.record_lag(0.0621)
    times.record_lag(0.03)
    later = mt.ModuleTimes('i-abc123', str(tmp_path))
    assert later.lag() == 0.03 and later.seconds('ansible/modules/ping.py') is None
    assert mt.ModuleTimes('i-other1', str(tmp_path)).lag() is None
    path = tmp_path / mt.DIR_NAME / 'i-abc123.json'
    written = path.stat().st_mtime_ns
    later.record_lag(0.035)                             # within 10 ms: not written again
    assert path.stat().st_mtime_ns == written and json.loads(path.read_text())[mt.LAG_KEY] == [30]
    later.record_lag(2.5)                               # learnt in a slow period: the next run takes at most
    assert mt.ModuleTimes('i-abc123', str(tmp_path)).lag() == mt.LAG_CARRIED_MAX


def test_long_runs_do_not_hold_the_next_ones(tmp_path):
    times = mt.ModuleTimes('i-abc123', str(tmp_path))
    times.record('command', 10000)                    # command: sleep 10
    assert mt.first_poll(times.seconds('command'), 0.0) == mt.LATEST
    times.record('command', 120)                      # command: id
    assert times.seconds('command') == 0.12


def test_a_file_with_other_values_is_not_trusted(tmp_path):
    (tmp_path / mt.DIR_NAME).mkdir()
    (tmp_path / mt.DIR_NAME / 'i-abc123.json').write_text('{"m": ["a", "b", "c"], "n": 5}')
    times = mt.ModuleTimes('i-abc123', str(tmp_path))
    assert times.seconds('m') is None and times.seconds('n') is None
    times.record('m', 100)
    assert times.seconds('m') == 0.1


def test_the_default_directory_must_be_this_users_and_private(tmp_path, monkeypatch):
    from ansible import constants as C
    run = tmp_path / 'ansible-local-1'
    run.mkdir()
    monkeypatch.setattr(C, 'DEFAULT_LOCAL_TMP', str(run), raising=False)
    tmp_path.chmod(0o700)
    assert mt.ModuleTimes('i-abc123').path == str(tmp_path / mt.DIR_NAME / 'i-abc123.json')
    tmp_path.chmod(0o777)                              # ANSIBLE_LOCAL_TEMP=/tmp: others could plant the file
    assert mt.ModuleTimes('i-abc123').path is None
    tmp_path.chmod(0o700)


def test_nothing_is_written_when_nothing_new_is_learnt(tmp_path):
    times = mt.ModuleTimes('i-abc123', str(tmp_path))
    for ms in range(100, 100 + mt.KEPT):
        times.record('m', ms)
    path = tmp_path / mt.DIR_NAME / 'i-abc123.json'
    before = path.stat().st_mtime_ns
    path.write_text(path.read_text())                  # same content, new mtime
    written = path.stat().st_mtime_ns
    times.record('m', 105)                             # within 10 % of every kept time
    assert path.stat().st_mtime_ns == written and written >= before
    times.record('m', 200)
    assert mt.ModuleTimes('i-abc123', str(tmp_path))._read()['m'] == list(range(101, 100 + mt.KEPT)) + [200]


def test_a_damaged_file_no_directory_or_no_time_change_nothing(tmp_path):
    (tmp_path / mt.DIR_NAME).mkdir()
    (tmp_path / mt.DIR_NAME / 'i-abc123.json').write_text('[not a dict')
    times = mt.ModuleTimes('i-abc123', str(tmp_path))
    assert times.seconds('m') is None
    times.record('m', None)
    times.record('m', -1)
    assert times.seconds('m') is None
    nowhere = mt.ModuleTimes('i-abc123', str(tmp_path / 'missing'))
    nowhere.record('m', 10)
    assert nowhere.seconds('m') is None


def test_each_instance_has_its_own_times_and_old_files_go(tmp_path, monkeypatch):
    mt.ModuleTimes('i-abc123', str(tmp_path)).record('m', 100)
    mt.ModuleTimes('i-other9', str(tmp_path)).record('m', 900)
    assert mt.ModuleTimes('i-abc123', str(tmp_path)).seconds('m') == 0.1
    assert mt.ModuleTimes('i-other9', str(tmp_path)).seconds('m') == 0.9
    assert mt.ModuleTimes('../x', str(tmp_path)).path is None
    folder = tmp_path / mt.DIR_NAME
    assert oct(folder.stat().st_mode & 0o777) == '0o700'
    old = folder / 'i-other9.json'
    os.utime(str(old), (1000, 1000))
    mt._prune(str(folder))
    assert sorted(os.listdir(str(folder))) == ['i-abc123.json']


def test_only_the_most_recently_run_modules_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(mt, 'MODULES_KEPT', 3)
    times = mt.ModuleTimes('i-abc123', str(tmp_path))
    for name in 'abcd':
        times.record(name, 10)
    times.record('b', 50)
    assert sorted(times._read()) == ['b', 'c', 'd']


@pytest.mark.parametrize('took, lag, expected', [
    (None, None, mt.SHELL_SECONDS + mt.UNKNOWN_LAG + mt.MARGIN),    # a shell one-liner on a new instance
    (None, 0.0, mt.SHELL_SECONDS + mt.MARGIN),                        # a lag of zero seen
    (0.0, 0.0, mt.SOONEST),                                           # never sooner than SOONEST
    (0.2, 0.05, 0.2 * mt.SLACK + 0.05 + mt.MARGIN),                  # a module: a little late rather than early
    (30.0, 0.05, mt.LATEST),                                          # never later than LATEST
])
def test_first_poll(took, lag, expected):
    assert mt.first_poll(took, lag) == pytest.approx(expected)


def test_deferred_commands_make_the_first_poll_later():
    assert mt.first_poll(0.2, 0.05, deferred=1) == pytest.approx(mt.first_poll(0.2, 0.05) + mt.DEFERRED_SECONDS)
    assert mt.first_poll(None, None, deferred=2) == pytest.approx(mt.first_poll(None, None) + 2 * mt.DEFERRED_SECONDS)
    assert mt.first_poll(None, None, module=True, deferred=1) == pytest.approx(
        0.2 * mt.UNSEEN_MODULE + mt.DEFERRED_SECONDS)


def test_a_longer_poll_interval_is_kept_by_the_first_two_polls():
    assert mt.first_poll(0.0, 0.0, poll_interval=2.0) == 0.5          # a quarter of it at the soonest
    assert mt.first_poll(30.0, 0.0, poll_interval=4.0) == 4.0         # no later than the interval, when longer
    assert mt.first_poll(30.0, 0.0, poll_interval=2.0) == mt.LATEST    # than LATEST
    assert mt.second_poll(2.0) == 1.0 and mt.second_poll(0.2) == mt.SECOND


def test_the_second_poll_after_a_long_first_one_waits_a_share_of_it():
    assert mt.second_poll(0.2, 0.3) == mt.SECOND
    assert mt.second_poll(0.2, 2.5) == pytest.approx(2.5 * mt.SECOND_SHARE)
    assert mt.second_poll(0.2, 100.0) == mt.CAP


def test_the_pace_of_an_instance_in_this_run():
    assert mt.next_pace(None, None, 500) is None and mt.next_pace(2.0, 0.2, None) == 2.0     # nothing to learn
    assert mt.next_pace(None, 0.2, 600) == pytest.approx(3.0)         # three times the kept time
    assert mt.next_pace(4.0, 0.2, 200) == pytest.approx(2.0)          # then a run at the kept time: geometric mean
    assert mt.next_pace(None, 1.0, 500) == pytest.approx(0.5)         # quieter than when the times were kept
    assert mt.next_pace(None, 0.01, 60000) == mt.PACE_MAX and mt.next_pace(None, 10.0, 1) == mt.PACE_MIN


def test_one_run_with_unusual_arguments_moves_the_pace_little():
    pace = mt.next_pace(None, 0.15, 160)                               # ping at its kept time
    pace = mt.next_pace(pace, 0.1, 5000)                               # command: sleep 5 (kept: command: id)
    assert pace < 2.5
    assert mt.first_poll(1.0, 0.05, pace=pace) < 2.0 * mt.first_poll(1.0, 0.05)


def test_the_pace_stretches_the_first_poll_and_its_limit():
    quiet = mt.first_poll(0.2, 0.05)
    assert mt.first_poll(0.2, 0.05, pace=1.4) == quiet                # noise (below SLACK / PACE_SHARE): unchanged
    assert mt.first_poll(0.2, 0.05, pace=5.0) == pytest.approx(0.2 * 5.0 * mt.PACE_SHARE + 0.05 + mt.MARGIN)
    assert mt.first_poll(5.0, 0.05, pace=2.0) == pytest.approx(mt.LATEST * 2.0 * mt.PACE_SHARE)
    assert mt.first_poll(None, None, module=True, pace=5.0) == pytest.approx(0.2 * mt.UNSEEN_MODULE * 4.0)
    assert mt.first_poll(30.0, 0.0, pace=mt.PACE_MAX) == mt.CAP
    # kept in a busier period: sooner, by the same curve (SLACK at a pace of 1)
    assert mt.first_poll(1.0, 0.05, pace=0.2) == pytest.approx(1.0 * mt.SLACK * 0.2 + 0.05 + mt.MARGIN)
    assert mt.first_poll(30.0, 0.0, pace=0.2) == mt.LATEST            # the limit is never shortened


def test_next_lag():
    # the first poll saw the end: try sooner, never below zero, never later than what was seen
    assert mt.next_lag(None, [0.4], 250) == pytest.approx(mt.UNKNOWN_LAG * mt.DECAY)
    assert mt.next_lag(0.2, [0.4], 250) == pytest.approx(0.2 * mt.DECAY)
    assert mt.next_lag(0.5, [0.3], 250) == pytest.approx(0.05)
    assert mt.next_lag(0.1, [0.2], 250) == 0.0
    # the first poll came too soon: the middle of the last two polls, less the run time
    assert mt.next_lag(0.05, [0.3, 0.5, 0.7], 250) == pytest.approx(0.35)
    # nothing to learn from
    assert mt.next_lag(0.2, [0.4], None) == 0.2 and mt.next_lag(None, [], 100) is None
