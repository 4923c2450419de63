# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import fcntl
import json
import types

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils import _shared_polls
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._shared_polls import (
    FRESH,
    LOCK_STEP,
    LOCK_WAIT,
    PollBoard,
    refuse_tags,
    running_task_id,
    step_tag,
    tags_refused,
)
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.fake_invocations import FakeClock


def Clock():
    return FakeClock(100.0)


def ask(board, invoke_id, service, clock):
    """One host's poll through ``board`` at ``clock``'s time."""
    return board.poll(invoke_id, service, clock=clock, sleep=clock.sleep)


def answer(*runs):
    """A tagged DescribeInvocationResults answer: (invoke ID, status, output) per host."""
    return [{'InvokeId': invoke_id, 'InstanceId': 'i-' + invoke_id, 'InvocationStatus': status, 'ExitCode': 0,
             'Output': output, 'ErrorCode': '', 'ErrorInfo': ''} for invoke_id, status, output in runs]


class Service(object):
    """What the tagged call answers, and how many times it was made."""

    def __init__(self, *runs):
        self.runs = list(runs)
        self.calls = 0

    def __call__(self, wanted):
        self.calls += 1
        return answer(*self.runs)


@pytest.fixture
def boards(tmp_path):
    """Two hosts' views of one step's board (each worker process makes its own), and the clock they poll by."""
    return (PollBoard(str(tmp_path), 'identity', 'task-1'), PollBoard(str(tmp_path), 'identity', 'task-1'), Clock())


def test_one_call_answers_every_host_whose_run_has_ended(boards):
    first, second, clock = boards
    service = Service(('t-1', 'Success', 'b25l'), ('t-2', 'Failed', 'dHdv'))
    result, at = ask(first, 't-1', service, clock)
    assert (result.invocation_status, result.output, at, service.calls) == ('Success', 'b25l', 100.0, 1)
    clock.now += 5                   # an ended run stays on the board however old the answer
    result, at = ask(second, 't-2', service, clock)
    assert (result.invocation_status, result.output, result.exit_code, at) == ('Failed', 'dHdv', 0, 100.0)
    assert service.calls == 1


def test_a_run_not_ended_stands_only_while_the_answer_is_fresh(boards):
    first, second, clock = boards
    service = Service(('t-1', 'Running', 'cGFy'), ('t-2', 'Running', 'cGFy'))
    ask(first, 't-1', service, clock)
    clock.now += FRESH / 2
    result, at = ask(second, 't-2', service, clock)
    assert (result.invocation_status, result.output, at, service.calls) == ('Running', None, 100.0, 1)
    clock.now += FRESH
    service.runs = [('t-1', 'Running', ''), ('t-2', 'Success', 'ZG9uZQ==')]
    result, at = ask(second, 't-2', service, clock)
    assert (result.invocation_status, result.output, service.calls) == ('Success', 'ZG9uZQ==', 2)


def test_a_run_the_answer_does_not_list_is_asked_for_by_its_id(boards):
    first, dummy, clock = boards
    service = Service(('t-2', 'Success', ''))
    assert ask(first, 't-1', service, clock) == (None, None)


def test_other_steps_and_other_accounts_have_their_own_boards(tmp_path):
    clock = Clock()
    ask(PollBoard(str(tmp_path), 'identity', 'task-1'), 't-1', Service(('t-1', 'Success', '')), clock)
    for other in (PollBoard(str(tmp_path), 'identity', 'task-2'), PollBoard(str(tmp_path), 'other', 'task-1')):
        service = Service(('t-1', 'Success', ''))
        ask(other, 't-1', service, clock)
        assert service.calls == 1


def test_forget_drops_a_read_result(boards):
    first, second, clock = boards
    service = Service(('t-1', 'Success', ''), ('t-2', 'Success', ''))
    ask(first, 't-1', service, clock)
    first.forget('t-1')
    ask(second, 't-2', service, clock)
    assert service.calls == 1
    assert set(second._runs()) == {'t-2'}
    clock.now += 1                                 # a later answer lists t-1 again: it is not written back
    service.runs = [('t-1', 'Success', 'c2VjcmV0'), ('t-3', 'Running', '')]
    ask(second, 't-3', service, clock)
    assert set(second._runs()) == {'t-2', 't-3'} and second._read()['read'] == ['t-1']


def test_an_end_once_seen_is_never_undone(boards):
    first, second, clock = boards
    ask(first, 't-1', Service(('t-1', 'Success', 'b25l'), ('t-2', 'Running', '')), clock)
    clock.now += 1                                 # a lagging answer says t-1 runs again
    ask(second, 't-2', Service(('t-1', 'Running', ''), ('t-2', 'Running', '')), clock)
    assert second._runs()['t-1']['InvocationStatus'] == 'Success'


def test_a_host_waits_for_the_call_in_flight_then_calls_alone(boards):
    first, dummy, clock = boards
    holder = open(first.path + '.lock', 'a')      # another worker's call in flight
    try:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        service = Service(('t-1', 'Success', ''))
        assert ask(first, 't-1', service, clock) is None        # ask by ID this time
        assert service.calls == 0 and clock.now >= 100.0 + LOCK_WAIT
    finally:
        holder.close()


def test_the_call_a_host_waited_for_answers_its_poll(boards):
    first, second, clock = boards
    holder = open(first.path + '.lock', 'a')      # the other host's call is in flight when this poll comes
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def answered_meanwhile(seconds):
        clock.sleep(seconds)
        if not holder.closed:                      # that call ends: t-2 still runs, and the lock is free
            with open(first.path, 'w') as board:
                json.dump({'runs': {'t-2': {'InvocationStatus': 'Running', 'at': clock.now}}, 'read': []}, board)
            holder.close()
            clock.now += 2 * FRESH                 # and this worker gets the processor back only later

    service = Service(('t-2', 'Running', ''))
    result, at = second.poll('t-2', service, clock=clock, sleep=answered_meanwhile)
    assert (result.invocation_status, at, service.calls) == ('Running', 100.0 + LOCK_STEP, 0)   # no call queued


def test_a_failed_call_lets_the_lock_go(boards):
    first, second, clock = boards

    def failing(wanted):
        raise RuntimeError('throttled')

    with pytest.raises(RuntimeError):
        ask(first, 't-1', failing, clock)
    service = Service(('t-1', 'Success', ''))
    assert ask(second, 't-1', service, clock)[0].invocation_status == 'Success'
    assert clock.now == 100.0                     # no wait for a lock left behind


def test_the_tag_names_the_running_task_and_fits(monkeypatch):
    from ansible.executor.process import worker
    assert running_task_id() is None              # not in a worker: nothing shared
    task = types.SimpleNamespace(_uuid='0242ac12-0002-abc-12', no_log=False)
    monkeypatch.setattr(worker, 'current_worker', types.SimpleNamespace(_task=task), raising=False)
    assert running_task_id() == '0242ac12-0002-abc-12'
    tag = step_tag('/tmp/ansible-local-1x', '0242ac12-0002-abc-12', 3)
    assert tag.endswith('-3') and len(tag) == 26 and '0242ac12' not in tag      # no controller MAC in the tag
    assert step_tag('/tmp/ansible-local-1x', '0242ac12-0002-abc-12', 3) == tag   # the same in every worker
    assert step_tag('/tmp/ansible-local-2y', '0242ac12-0002-abc-12', 3) != tag   # another run, another tag
    task.no_log = True
    assert running_task_id() is None               # its output would be on the board


def test_a_refused_tag_is_not_tried_again_in_the_run(tmp_path):
    assert not tags_refused(str(tmp_path), 'identity')
    refuse_tags(str(tmp_path), 'identity')
    assert tags_refused(str(tmp_path), 'identity') and not tags_refused(str(tmp_path), 'other')


def test_without_flock_every_host_asks_alone(boards, monkeypatch):
    monkeypatch.setattr(_shared_polls, 'fcntl', None)
    first, dummy, clock = boards
    service = Service(('t-1', 'Success', ''))
    assert ask(first, 't-1', service, clock) is None
    assert service.calls == 0
