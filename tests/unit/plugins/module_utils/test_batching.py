# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import (
    BATCH_LIMITS,
    MAX_WORKERS,
    chunks,
    run_concurrently,
)


def test_batch_limits():
    assert BATCH_LIMITS == {'RunCommand': 100, 'InvokeCommand': 100, 'DescribeCloudAssistantStatus': 100,
                            'DescribeInstances': 100, 'StopInvocation': 50, 'SendFile': 50,
                            'InstallCloudAssistant': 50}


@pytest.mark.parametrize('count, size, lengths', [
    (0, 100, []),
    (1, 100, [1]),
    (100, 100, [100]),
    (101, 100, [100, 1]),
    (250, 100, [100, 100, 50]),
    (120, 50, [50, 50, 20]),
])
def test_chunks(count, size, lengths):
    items = ['i-%d' % n for n in range(count)]
    result = chunks(items, size)
    assert [len(chunk) for chunk in result] == lengths
    assert [item for chunk in result for item in chunk] == items


def test_chunks_accepts_iterators_and_rejects_zero():
    assert chunks(iter('abcde'), 2) == [['a', 'b'], ['c', 'd'], ['e']]
    with pytest.raises(ValueError):
        chunks([1], 0)


def test_results_keep_batch_order():
    delays = [0.05, 0.0, 0.03, 0.01, 0.02]

    def work(batch):
        time.sleep(delays[batch[0]])
        return batch[0] * 10

    assert run_concurrently(work, [[n] for n in range(5)], max_workers=5) == [0, 10, 20, 30, 40]


def test_empty_and_single_batch():
    assert run_concurrently(lambda batch: 1 / 0, []) == []
    assert run_concurrently(len, [[1, 2, 3]]) == [3]


def test_concurrency_is_bounded():
    lock = threading.Lock()
    state = {'now': 0, 'peak': 0}

    def work(batch):
        with lock:
            state['now'] += 1
            state['peak'] = max(state['peak'], state['now'])
        time.sleep(0.02)
        with lock:
            state['now'] -= 1
        return batch

    assert run_concurrently(work, list(range(20)), max_workers=3) == list(range(20))
    assert 1 < state['peak'] <= 3


def test_max_workers_has_a_ceiling():
    lock = threading.Lock()
    threads = set()

    def work(batch):
        with lock:
            threads.add(threading.current_thread().name)
        time.sleep(0.01)
        return batch

    run_concurrently(work, list(range(100)), max_workers=1000)
    assert len(threads) <= MAX_WORKERS


def test_waits_for_all_then_raises_the_first_error_in_batch_order():
    finished = []
    lock = threading.Lock()

    def work(batch):
        if batch == 1:
            time.sleep(0.05)
            raise RuntimeError('batch 1 failed')
        if batch == 3:
            raise ValueError('batch 3 failed')
        time.sleep(0.1)
        with lock:
            finished.append(batch)
        return batch

    with pytest.raises(RuntimeError, match='batch 1 failed'):
        run_concurrently(work, [0, 1, 2, 3, 4], max_workers=5)
    assert sorted(finished) == [0, 2, 4]  # every other batch ran to its end


def test_sequential_path_also_runs_every_batch():
    seen = []

    def work(batch):
        seen.append(batch)
        if batch == 0:
            raise KeyError('first')
        return batch

    with pytest.raises(KeyError):
        run_concurrently(work, [0, 1, 2], max_workers=1)
    assert seen == [0, 1, 2]
