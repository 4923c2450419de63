# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A retry after a lost reply never runs a command twice: a fake SDK client that does the work (one invocation per
new ClientToken, the stored answer for a known one, as the service does) and then loses the reply, under the real
``CloudAssistantApi`` (retry included) and ``CommandRunner``."""

from __future__ import annotations

import threading

from alibabacloud_ecs20140526 import models as ecs_models
from darabonba import exceptions as dara_exceptions
from darabonba.policy import retry as dara_retry

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _runner as RUN
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import CloudAssistantApi
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import RetryPolicy


def connection_reset():
    """What the SDK raises when the connection is closed without an answer."""
    error = dara_exceptions.RetryError("('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))")
    error.__context__ = ConnectionResetError(104, 'Connection reset by peer')
    return dara_exceptions.UnretryableException(dara_retry.RetryPolicyContext(retries_attempted=1, exception=error))


class Response(object):
    def __init__(self, body):
        self.status_code = 200
        self.headers = {}
        self.body = body


class ActsThenLosesReplies(object):
    """RunCommand / InvokeCommand at the SDK method boundary: acts first, then loses the reply of the first
    ``lose`` calls of every ClientToken (``lose`` None: of every call without a token too)."""

    def __init__(self, lose=2):
        self.lose = lose
        self.lock = threading.Lock()
        self.invocations = {}     # invoke id -> instance ids (what ran)
        self.by_token = {}        # ClientToken -> invoke id
        self.calls = []           # (action, ClientToken) in call order
        self.lost = {}            # ClientToken -> replies lost

    def _act(self, action, request):
        token = request.client_token
        with self.lock:
            self.calls.append((action, token))
            invoke_id = self.by_token.get(token) if token else None
            if invoke_id is None:
                invoke_id = 't-%d' % (len(self.invocations) + 1)
                self.invocations[invoke_id] = list(request.instance_id)
                if token:
                    self.by_token[token] = invoke_id
            lost = self.lost.get(token, 0)
            if lost < self.lose:
                self.lost[token] = lost + 1
                raise connection_reset()
        return Response(ecs_models.RunCommandResponseBody(invoke_id=invoke_id, command_id='c-' + invoke_id))

    def run_command_with_options(self, request, runtime):
        return self._act('RunCommand', request)

    def invoke_command_with_options(self, request, runtime):
        return self._act('InvokeCommand', request)


def api_over(client):
    return CloudAssistantApi(client, 'cn-hangzhou', RetryPolicy(deadline=None, sleep=lambda seconds: None,
                                                                rng=lambda: 0.0))


def test_lost_run_command_replies_are_retried_with_the_same_token_and_run_once():
    client = ActsThenLosesReplies(lose=2)
    api = api_over(client)
    targets = ['i-%03d' % n for n in range(250)]
    batches = RUN.CommandRunner(api, token_salt='salt').submit(RUN.CommandSpec(content='echo once'), targets)
    # three batches (100, 100, 50), each acted on once although each call was made three times
    assert sorted(len(ids) for ids in client.invocations.values()) == [50, 100, 100]
    assert api.calls == {'RunCommand': 9}
    tokens = [token for _action, token in client.calls]
    assert len(set(tokens)) == 3 and all(tokens.count(t) == 3 for t in set(tokens))
    assert client.lost == dict((t, 2) for t in set(tokens))
    # every batch got the invocation its first (lost) call created
    assert sorted(b.invoke_id for b in batches) == sorted(client.invocations)
    assert all(b.error is None and client.invocations[b.invoke_id] == b.instance_ids for b in batches)


def test_lost_invoke_command_reply_is_retried_with_the_same_token():
    client = ActsThenLosesReplies(lose=1)
    api = api_over(client)
    (batch,) = RUN.CommandRunner(api, token_salt='salt').submit(RUN.CommandSpec(command_id='c-saved'), ['i-1', 'i-2'])
    assert [action for action, _token in client.calls] == ['InvokeCommand', 'InvokeCommand']
    assert len(set(token for _action, token in client.calls)) == 1
    assert list(client.invocations) == [batch.invoke_id]


def test_a_call_without_token_is_not_repeated_after_a_lost_reply():
    """The other half of the rule: a RunCommand the service cannot recognise again is not sent twice."""
    client = ActsThenLosesReplies(lose=1)
    api = api_over(client)
    request = ecs_models.RunCommandRequest(type='RunShellScript', command_content='id', instance_id=['i-1'])
    try:
        api.call('RunCommand', request)
    except Exception as exc:  # pylint: disable=broad-except
        assert 'RunCommand' in str(exc)
    else:
        raise AssertionError('a lost reply without a ClientToken must fail the call')
    assert api.calls == {'RunCommand': 1} and len(client.invocations) == 1
