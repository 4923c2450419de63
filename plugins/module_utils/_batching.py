# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Per-action instance limits, chunking, and bounded concurrency for fleet-wide calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

# Most instances one call of each action accepts (shared/reference/cloud-assistant-api.md §6, §7; more gives
# InstanceIds.ExceedLimit). RunCommand/InvokeCommand's 100 can be raised in Quota Center; 100 is the default.
BATCH_LIMITS = {
    'RunCommand': 100,
    'InvokeCommand': 100,
    'DescribeCloudAssistantStatus': 100,
    'DescribeInstances': 100,
    'StopInvocation': 50,
    'SendFile': 50,
    'InstallCloudAssistant': 50,
}

# Upper bound on worker threads whatever the caller asks for: the API throttles per account, and more threads
# than that only produce Throttling answers.
MAX_WORKERS = 32


def chunks(items, size):
    """``items`` in consecutive lists of at most ``size`` elements (``[]`` for no items)."""
    size = int(size)
    if size < 1:
        raise ValueError('chunk size must be at least 1, got %d' % size)
    items = list(items)
    return [items[start:start + size] for start in range(0, len(items), size)]


def run_concurrently(fn, batches, max_workers=8):
    """``[fn(batch) for batch in batches]``, run on at most ``max_workers`` threads.

    Results come back in the order of ``batches``. Every call runs to its end even when one fails; then the
    exception of the first failed batch (in batch order) is raised.
    """
    batches = list(batches)
    if not batches:
        return []
    workers = max(1, min(int(max_workers or 1), MAX_WORKERS, len(batches)))
    if workers == 1:
        outcomes = []
        for batch in batches:
            try:
                outcomes.append((True, fn(batch)))
            except Exception as exc:  # pylint: disable=broad-except
                outcomes.append((False, exc))
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(fn, batch) for batch in batches]
            outcomes = []
            for future in futures:
                exc = future.exception()  # waits for this one
                outcomes.append((False, exc) if exc is not None else (True, future.result()))
    for ok, value in outcomes:
        if not ok:
            raise value
    return [value for ok, value in outcomes]
