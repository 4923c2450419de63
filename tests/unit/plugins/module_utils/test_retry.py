# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import RetryPolicy

sdk_exceptions = pytest.importorskip('alibabacloud_tea_openapi.exceptions')
dara_exceptions = pytest.importorskip('darabonba.exceptions')
credential_exceptions = pytest.importorskip('alibabacloud_credentials.exceptions')
from darabonba.policy.retry import RetryPolicyContext  # noqa: E402  pylint: disable=wrong-import-position
from darabonba.request import DaraRequest  # noqa: E402  pylint: disable=wrong-import-position


def api_error(code, status=400, cls=None, retry_after=None):
    if cls is None:
        cls = sdk_exceptions.ServerException if status >= 500 else sdk_exceptions.ClientException
    kwargs = {'retry_after': retry_after} if retry_after is not None else {}
    return cls(status_code=status, code='%s' % code, message='code: %s, msg request id: R' % status,
               data={'Code': code, 'Message': 'msg', 'RequestId': 'R'}, request_id='R', **kwargs)


def throttled(retry_after=None, code='Throttling.User'):
    if retry_after is None:
        return api_error(code, 400)
    return api_error(code, 400, cls=sdk_exceptions.ThrottlingException, retry_after=retry_after)


def unretryable(inner):
    request = DaraRequest()
    request.headers = {'host': '127.0.0.1:8080'}
    return dara_exceptions.UnretryableException(RetryPolicyContext(retries_attempted=1, http_request=request,
                                                                   exception=inner))


def dropped():
    return unretryable(dara_exceptions.RetryError("('Connection aborted.', RemoteDisconnected('Remote end closed "
                                                  "connection without response'))"))


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self, start=1000.0):
        self.now = start
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def policy(deadline=None, rng=lambda: 0.5, fake=None, **kwargs):
    fake = fake or FakeTime()
    return RetryPolicy(deadline=deadline, clock=fake.clock, sleep=fake.sleep, rng=rng, **kwargs), fake


class Script:
    """fn() for RetryPolicy.run: raises the scripted exceptions in turn, then returns 'ok'."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return 'ok'


# -- classification -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('exc', [
    api_error('Throttling', 400),
    api_error('Throttling.User', 400),
    api_error('Throttling.Api', 429),
    api_error('ServiceUnavailable', 503),
    api_error('ServiceUnavailable', 500),
    api_error('InternalError', 500),
    api_error('InternalError.Dispatch', 500),
    api_error('IdempotentProcessing', 403),
    api_error('SomethingNew', 502),
    api_error('None', 504),
    throttled(retry_after=200, code='SomeCodeWithRetryAfter'),
    dropped(),
    unretryable(dara_exceptions.RetryError('[Errno 111] Connection refused')),
    CloudAssistantError('could not reach', kind='connection'),
], ids=lambda exc: type(exc).__name__ + ':' + str(getattr(exc, 'code', '')))
def test_retryable(exc):
    assert RetryPolicy().retryable(exc)


@pytest.mark.parametrize('exc', [
    api_error('InvalidAccessKeyId.NotFound', 404),
    api_error('SignatureDoesNotMatch', 400),
    api_error('Forbidden.RAM', 403),
    api_error('InvalidInstance.NotFound', 404),
    api_error('InvalidParameter', 400),
    api_error('IdempotentParameterMismatch', 403),
    api_error('InvalidInstance.NotMatch', 400),
    api_error('Invocation.ExceedQuota', 403),
    sdk_exceptions.ClientException(code='InvalidCredentials', message='Please set up the credentials correctly.'),
    unretryable(credential_exceptions.CredentialException('no credentials')),
    ValueError('bug'),
    KeyError('bug'),
    CloudAssistantError('bad option', kind='config'),
], ids=lambda exc: type(exc).__name__ + ':' + str(getattr(exc, 'code', '')))
def test_not_retryable(exc):
    assert not RetryPolicy().retryable(exc)


def test_old_tea_exception_status_in_data():
    tea = pytest.importorskip('Tea.exceptions')
    exc = tea.TeaException({'code': 'SomethingNew', 'message': 'boom', 'data': {'statusCode': 502}})
    assert RetryPolicy().retryable(exc)
    exc = tea.TeaException({'code': 'InvalidParameter', 'message': 'bad', 'data': {'statusCode': 400}})
    assert not RetryPolicy().retryable(exc)


@pytest.mark.parametrize('exc, expected', [
    (throttled(), True),
    (throttled(retry_after=300), True),
    (api_error('InternalError', 500), False),
    (api_error('ServiceUnavailable', 503), False),
    (dropped(), False),
])
def test_not_idempotent_only_throttling_is_retried(exc, expected):
    assert RetryPolicy().retryable(exc, idempotent=False) is expected


# -- delays ---------------------------------------------------------------------------------------------------------
def test_delay_full_jitter_bounds():
    low, dummy = policy(rng=lambda: 0.0)
    high, dummy = policy(rng=lambda: 0.999999)
    for attempt, cap in [(1, 0.25), (2, 0.5), (3, 1.0), (4, 2.0), (5, 4.0), (6, 5.0), (7, 5.0), (60, 5.0)]:
        assert low.delay(attempt) == 0.0
        assert high.delay(attempt) == pytest.approx(cap, rel=1e-5)


def test_delay_is_uniform_between_zero_and_cap():
    values = iter([0.1, 0.5, 0.9])
    pol, dummy = policy(rng=lambda: next(values))
    assert [pol.delay(3) for dummy in range(3)] == pytest.approx([0.1, 0.5, 0.9])


def test_retry_after_is_a_floor_in_milliseconds():
    pol, dummy = policy(rng=lambda: 0.0)
    assert pol.delay(1, throttled(retry_after=400)) == pytest.approx(0.4)
    pol, dummy = policy(rng=lambda: 1.0)
    # jitter larger than the floor: the jitter is kept
    assert pol.delay(5, throttled(retry_after=400)) == pytest.approx(4.0)
    # a floor above max_delay is honoured (bounded at 60 s)
    assert pol.delay(1, throttled(retry_after=9000)) == pytest.approx(9.0)
    assert pol.delay(1, throttled(retry_after=10 ** 9)) == pytest.approx(60.0)


def test_run_sleeps_at_least_retry_after():
    pol, fake = policy(rng=lambda: 0.0)
    script = Script(throttled(retry_after=150), throttled(retry_after=300))
    assert pol.run(script) == 'ok'
    assert fake.sleeps == pytest.approx([0.15, 0.3])
    assert script.calls == 3
    assert pol.retries == 2
    assert pol.retried_codes == {'Throttling.User': 2}


# -- run ------------------------------------------------------------------------------------------------------------
def test_success_first_time_does_not_sleep():
    pol, fake = policy()
    assert pol.run(Script()) == 'ok'
    assert fake.sleeps == []


def test_retries_transient_errors_until_success():
    pol, fake = policy(rng=lambda: 1.0)
    script = Script(api_error('ServiceUnavailable', 503), dropped(), api_error('InternalError', 500), throttled())
    assert pol.run(script, action='DescribeInvocations') == 'ok'
    assert script.calls == 5
    assert fake.sleeps == pytest.approx([0.25, 0.5, 1.0, 2.0])
    assert pol.retried_codes == {'ServiceUnavailable': 1, 'Connection': 1, 'InternalError': 1, 'Throttling.User': 1}


def test_non_retryable_is_raised_at_once_and_mapped():
    pol, fake = policy()
    script = Script(api_error('InvalidInstance.NotFound', 404))
    with pytest.raises(CloudAssistantError) as info:
        pol.run(script, action='RunCommand')
    assert script.calls == 1
    assert fake.sleeps == []
    assert info.value.code == 'InvalidInstance.NotFound'
    assert info.value.msg.startswith('RunCommand failed: InvalidInstance.NotFound')


def test_without_action_the_original_exception_is_raised():
    pol, dummy = policy()
    error = api_error('Forbidden.RAM', 403)
    with pytest.raises(sdk_exceptions.ClientException) as info:
        pol.run(Script(error))
    assert info.value is error


def test_deadline_is_never_crossed():
    fake = FakeTime(start=0.0)
    pol, dummy = policy(deadline=10.0, rng=lambda: 1.0, fake=fake)
    script = Script(*[api_error('ServiceUnavailable', 503) for dummy in range(100)])
    with pytest.raises(CloudAssistantError) as info:
        pol.run(script, action='DescribeInvocations')
    assert info.value.code == 'ServiceUnavailable'
    assert fake.now <= 10.0
    # 0.25 + 0.5 + 1 + 2 + 4 = 7.75; the next 5 s wait would end at 12.75 > 10: give up instead of sleeping
    assert fake.sleeps == pytest.approx([0.25, 0.5, 1.0, 2.0, 4.0])
    assert script.calls == 6


def test_deadline_with_retry_after_floor():
    fake = FakeTime(start=0.0)
    pol, dummy = policy(deadline=1.0, rng=lambda: 0.0, fake=fake)
    script = Script(throttled(retry_after=400), throttled(retry_after=400), throttled(retry_after=400))
    with pytest.raises(CloudAssistantError) as info:
        pol.run(script, action='RunCommand')
    assert info.value.code == 'Throttling.User'
    assert fake.sleeps == pytest.approx([0.4, 0.4])
    assert fake.now <= 1.0


def test_deadline_already_passed_still_makes_one_call():
    fake = FakeTime(start=100.0)
    pol, dummy = policy(deadline=50.0, fake=fake)
    script = Script(throttled())
    with pytest.raises(CloudAssistantError):
        pol.run(script, action='DescribeRegions')
    assert script.calls == 1
    assert fake.sleeps == []


def test_attempts_are_capped_without_deadline():
    pol, fake = policy(max_attempts=4)
    script = Script(*[dropped() for dummy in range(10)])
    with pytest.raises(CloudAssistantError) as info:
        pol.run(script, action='DescribeRegions')
    assert script.calls == 4
    assert len(fake.sleeps) == 3
    assert info.value.kind == 'connection'


def test_non_idempotent_call_not_retried_after_lost_reply():
    pol, fake = policy()
    script = Script(dropped())
    with pytest.raises(CloudAssistantError) as info:
        pol.run(script, action='RunCommand', idempotent=False)
    assert script.calls == 1
    assert 'could not reach the endpoint' in info.value.msg


def test_non_idempotent_call_retried_after_throttling():
    pol, dummy = policy()
    script = Script(throttled(retry_after=100))
    assert pol.run(script, action='RunCommand', idempotent=False) == 'ok'
    assert script.calls == 2
