# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""One ``DescribeInvocationResults`` call answers the polls of every host running the same step of the same task.

Ansible runs a task on each host in a worker process of its own, all at once (``forks``), and each connection used
to poll for its own invocation alone: ten hosts cost ten calls per round, a hundred hosts a hundred, and that is
what an account's API rate limit meets first on a large fleet. Instead, the connection tags each command it waits
for with the task's ID and the command's place in that task on the host (``step_tag``: hosts run a task's commands
in the same order), and a poll asks for every invocation carrying that tag at once (``PollBoard.poll``). The answer
is written to a board, a small JSON file in this run's private local temporary directory; a host whose poll comes
reads its result there, and calls only when the board holds nothing about it newer than ``FRESH`` seconds. A
host's output stays on the board until that host has read it (``forget``); a ``no_log`` task shares nothing.

Nothing depends on the grouping being right. Each host still reads only its own invocation; one that the tagged
answer does not list (a host whose steps differ, a service whose tag index lags behind) is asked for by its ID, as
before, and the board is not used for it again. Hosts reached with another access key, region or endpoint never
share a board: its name is a hash of those (never of a secret) and of the tag. The tag names the task by a hash of
its ID and of the run's temporary directory: Ansible's task IDs begin with the controller's MAC address, which is
no business of whoever may read the account's invocations, and two runs never share a tag.
"""

from __future__ import annotations

import hashlib
import os
import time

try:
    import fcntl
except ImportError:  # not a POSIX controller: every host polls alone
    fcntl = None

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._json_files import read_json_object, write_json_atomically
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import TAG_PREFIX
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import is_terminal

TAG_KEY = TAG_PREFIX + 'step'   # the invocation tag that groups one step of one task (the collection's own prefix)
FRESH = 0.05        # seconds: a shared answer this recent that lists a host's run as not ended stands for its poll
LOCK_WAIT = 2.0     # seconds a host waits for another host's call before it calls alone
LOCK_STEP = 0.005   # seconds between two tries of the lock
KEPT_FIELDS = ('InvocationStatus', 'ExitCode', 'Output', 'ErrorCode', 'ErrorInfo')


def running_task_id():
    """The ID of the task this Ansible worker process runs; None outside a worker or for a ``no_log`` task (nothing
    is shared then: the board would hold its output)."""
    try:
        from ansible.executor.process import worker
    except ImportError:
        return None
    task = getattr(getattr(worker, 'current_worker', None), '_task', None)
    task_id = getattr(task, '_uuid', None)
    if getattr(task, 'no_log', None) is not False:      # True, or not known: not shared
        return None
    return task_id if isinstance(task_id, str) and task_id else None


def step_tag(run_dir, task_id, step):
    """The tag value of the ``step``-th awaited command of task ``task_id`` on a host in the run whose temporary
    directory is ``run_dir``: a hash of both (the same in every worker of the run) and the step."""
    digest = hashlib.sha256(('%s\n%s' % (run_dir, task_id)).encode('utf-8')).hexdigest()[:24]
    return '%s-%d' % (digest, step)


def _untagged_marker(run_dir, identity):
    digest = hashlib.sha256(identity.encode('utf-8')).hexdigest()[:32]
    return os.path.join(run_dir, 'cloud_assistant-untagged-%s' % digest)


def tags_refused(run_dir, identity):
    """Whether a RunCommand of this run with ``identity``'s keys had its tag refused (``refuse_tags``)."""
    return os.path.exists(_untagged_marker(run_dir, identity))


def refuse_tags(run_dir, identity):
    """Note for the rest of the run that ``identity``'s keys may not tag invocations: no host tries again."""
    try:
        open(_untagged_marker(run_dir, identity), 'a').close()
    except OSError:
        pass


class SharedResult(object):
    """One invocation's result as the board keeps it, read as the SDK's InvocationResult model is."""

    def __init__(self, fields):
        self.invocation_status = fields.get('InvocationStatus')
        self.exit_code = fields.get('ExitCode')
        self.output = fields.get('Output')
        self.error_code = fields.get('ErrorCode')
        self.error_info = fields.get('ErrorInfo')


class PollBoard(object):
    """The board of one step: ``directory`` (this run's private temporary directory), ``identity`` (what tells
    the API account and place apart, with no secret in it: it is hashed into the file name) and ``tag_value``."""

    def __init__(self, directory, identity, tag_value):
        digest = hashlib.sha256(('%s\n%s' % (identity, tag_value)).encode('utf-8')).hexdigest()[:32]
        self.directory = directory
        self.path = os.path.join(directory, 'cloud_assistant-poll-%s.json' % digest)
        self.tag_value = tag_value

    def _read(self):
        """The board: ``runs`` (invoke ID: what the last answer said of it, and when) and ``read`` (the invoke IDs
        whose hosts have their result: never written again)."""
        data = read_json_object(self.path) or {}
        runs, read = data.get('runs'), data.get('read')
        return {'runs': runs if isinstance(runs, dict) else {}, 'read': read if isinstance(read, list) else []}

    def _runs(self):
        return self._read()['runs']

    @staticmethod
    def _known(runs, invoke_id, now):
        """(result, when it was answered) when the board's ``runs`` answer a poll for ``invoke_id`` now, else None."""
        entry = runs.get(invoke_id)
        if not isinstance(entry, dict) or not isinstance(entry.get('at'), (int, float)):
            return None
        if is_terminal(entry.get('InvocationStatus')) or now - entry['at'] < FRESH:
            return SharedResult(entry), entry['at']
        return None

    def poll(self, invoke_id, describe_step, clock=time.monotonic, sleep=time.sleep):
        """A poll for ``invoke_id``: ``(result, when it was answered)`` from the board or from one call of
        ``describe_step(invoke_id)`` (the tagged answer, as far as it lists ``invoke_id``: a list of
        InvocationResult maps) made for every host of the step; ``(None, None)`` when that answer does not list
        ``invoke_id`` (ask by ID from now on); None when no call could be made (the lock stayed busy, or no
        ``flock``): ask by ID this time."""
        asked = clock()
        known = self._known(self._runs(), invoke_id, asked)
        if known is not None:
            return known
        lock = self._lock(clock, sleep)
        if lock is None:
            return None
        try:
            # the call another host made while this one waited for the lock answers this poll: calling again would
            # only queue the hosts' calls one behind the other (the board read here stays current: every write is
            # made under the lock)
            board = self._read()
            runs, read = board['runs'], set(board['read'])
            known = self._known(runs, invoke_id, asked)
            if known is not None:
                return known
            answer = describe_step(invoke_id)
            at = clock()
            for record in answer:
                listed = record.get('InvokeId')
                if not isinstance(listed, str) or listed in read or \
                        is_terminal((runs.get(listed) or {}).get('InvocationStatus')):
                    continue                             # read already, or its end known (never undone)
                entry = dict((name, record.get(name)) for name in KEPT_FIELDS)
                if not is_terminal(entry['InvocationStatus']):
                    entry.pop('Output')                  # read again when it has ended
                entry['at'] = at
                runs[listed] = entry
            write_json_atomically(self.path, board)
        finally:
            lock.close()
        entry = runs.get(invoke_id) if any(r.get('InvokeId') == invoke_id for r in answer) else None
        return (SharedResult(entry), at) if entry is not None else (None, None)

    def forget(self, invoke_id):
        """Drop ``invoke_id``'s result, read by its host, for good: its output leaves the controller's disk, and a
        later answer that lists it again is not written."""
        lock = self._lock(time.monotonic, time.sleep)
        if lock is None:
            return
        try:
            board = self._read()
            board['runs'].pop(invoke_id, None)
            board['read'].append(invoke_id)
            write_json_atomically(self.path, board)
        finally:
            lock.close()

    def _lock(self, clock, sleep):
        """The board's lock (an open file holding an exclusive ``flock``; closing it lets go), or None when it
        cannot be had within ``LOCK_WAIT`` seconds. The lock goes with its process: a worker that dies holding it
        blocks no one."""
        if fcntl is None:
            return None
        try:
            handle = open(self.path + '.lock', 'a')
        except OSError:
            return None
        give_up = clock() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return handle
            except OSError:
                if clock() >= give_up:
                    handle.close()
                    return None
                sleep(LOCK_STEP)
