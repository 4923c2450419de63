# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import random
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from alibabacloud_tea_openapi import exceptions as sdk_exceptions
from darabonba import exceptions as dara_exceptions
from alibabacloud_credentials import exceptions as credential_exceptions
from darabonba.policy.retry import RetryPolicyContext
from darabonba.request import DaraRequest
from requests import exceptions as requests_exceptions
from urllib3 import exceptions as urllib3_exceptions

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import from_exception
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import DEFAULT_MAX_ATTEMPTS, RetryPolicy


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


# Failures without an answer, shaped as the ECS SDK raised them against 127.0.0.1 (see test_errors.py, and
# test_live_sdk_transport_errors below): UnretryableException -> RetryError(text), whose __context__ leads through
# the requests and urllib3 exceptions to the ssl.SSLError / socket.gaierror / OSError at the bottom.
def transport(text, requests_cls, *layers):
    retry_error = dara_exceptions.RetryError(text)
    layers = layers + (requests_cls(text), retry_error)
    for inner, outer in zip(layers, layers[1:]):
        outer.__context__ = inner
    return unretryable(retry_error)


def pool_text(cause, scheme='https', host='127.0.0.1', port=8080):
    return "%sConnectionPool(host='%s', port=%d): Max retries exceeded with url: / (Caused by %s)" % (
        scheme.upper(), host, port, cause)


def tls(ssl_cls, errno, message):
    bottom = ssl_cls(errno, message)
    return transport(pool_text("SSLError(%s(%d, '%s'))" % (ssl_cls.__name__, errno, message)),
                     requests_exceptions.SSLError, bottom, urllib3_exceptions.SSLError(bottom))


def wrong_version_number():
    return tls(ssl.SSLError, 1, '[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)')


def certificate_verify_failed():
    return tls(ssl.SSLCertVerificationError, 1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: '
               'self-signed certificate (_ssl.c:1006)')


def tls_eof():
    return tls(ssl.SSLEOFError, 8, '[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol '
               '(_ssl.c:1006)')


def dns(errno=-2, strerror='Name or service not known'):
    bottom = socket.gaierror(errno, strerror)
    cause = ('NameResolutionError("HTTPSConnection(host=\'nonexistent.invalid\', port=443): Failed to resolve '
             '\'nonexistent.invalid\' ([Errno %d] %s)")' % (errno, strerror))
    return transport(pool_text(cause, host='nonexistent.invalid', port=443), requests_exceptions.ConnectionError,
                     bottom)


def refused():
    cause = ('NewConnectionError("HTTPConnection(host=\'127.0.0.1\', port=8080): Failed to establish a new '
             'connection: [Errno 111] Connection refused")')
    return transport(pool_text(cause, 'http'), requests_exceptions.ConnectionError,
                     ConnectionRefusedError(111, 'Connection refused'))


def reset():
    bottom = ConnectionResetError(104, 'Connection reset by peer')
    return transport("('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))",
                     requests_exceptions.ConnectionError, bottom, urllib3_exceptions.ProtocolError('Connection '
                                                                                                   'aborted.', bottom))


def timeout(bottom_text='timed out'):
    text = "HTTPConnectionPool(host='127.0.0.1', port=8080): Read timed out. (read timeout=15.0)"
    return transport(text, requests_exceptions.ReadTimeout, TimeoutError(bottom_text))


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
    api_error('QuotaExceeded.Something', 429),
    dropped(),
    unretryable(dara_exceptions.RetryError('[Errno 111] Connection refused')),
    CloudAssistantError('could not reach', kind='connection'),
    refused(),
    reset(),
    timeout(),
    timeout('_ssl.c:989: The handshake operation timed out'),
    tls_eof(),
    dns(-3, 'Temporary failure in name resolution'),
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
    wrong_version_number(),
    certificate_verify_failed(),
    unretryable(dara_exceptions.RetryError(pool_text("SSLError(SSLError(1, '[SSL: WRONG_VERSION_NUMBER] wrong "
                                                     "version number (_ssl.c:1006)'))"))),  # text alone
    dns(),
    dns(-5, 'No address associated with hostname'),
    unretryable(dara_exceptions.RetryError("Failed to resolve 'h' ([Errno 8] nodename nor servname provided, or not "
                                           "known)")),  # text alone, macOS wording
    CloudAssistantError('TLS handshake failed', kind='tls'),
    CloudAssistantError('does not resolve', kind='dns'),
    unretryable(RuntimeError('Failed to parse the value as json format, Value: "<html>".')),
], ids=lambda exc: type(exc).__name__ + ':' + str(getattr(exc, 'code', '')))
def test_not_retryable(exc):
    assert not RetryPolicy().retryable(exc)


def test_old_tea_exception_status_in_data():
    from Tea import exceptions as tea
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


# -- failures that cannot heal fail at once -------------------------------------------------------------------------
@pytest.mark.parametrize('make, kind', [
    (wrong_version_number, 'tls'),
    (certificate_verify_failed, 'tls'),
    (dns, 'dns'),
])
def test_permanent_transport_failure_fails_at_once(make, kind):
    pol, fake = policy(deadline=1600.0)
    script = Script(*[make() for dummy in range(5)])
    with pytest.raises(CloudAssistantError) as info:
        pol.run(script, action='DescribeRegions')
    assert script.calls == 1
    assert fake.sleeps == []
    assert pol.retries == 0
    assert info.value.kind == kind


@pytest.mark.parametrize('code, status', [
    ('InvalidParameter', 400),
    ('SignatureDoesNotMatch', 400),
    ('InvalidAccessKeyId.NotFound', 404),
    ('Forbidden.RAM', 403),
    ('InvalidInstance.NotFound', 404),
    ('Invocation.ExceedQuota', 403),
    ('MissingParameter', 400),
])
def test_4xx_other_than_throttling_fails_at_once(code, status):
    pol, fake = policy(deadline=1600.0)
    script = Script(*[api_error(code, status) for dummy in range(5)])
    with pytest.raises(CloudAssistantError) as info:
        pol.run(script, action='DescribeInvocations')
    assert (script.calls, fake.sleeps, pol.retries) == (1, [], 0)
    assert (info.value.kind, info.value.code, info.value.status_code) == ('api', code, status)


def transient_dns():
    return dns(-3, 'Temporary failure in name resolution')


@pytest.mark.parametrize('make', [refused, reset, timeout, tls_eof, transient_dns])
def test_connection_failures_are_retried_until_success(make):
    pol, fake = policy(deadline=1100.0)
    script = Script(make(), make(), make())
    assert pol.run(script, action='DescribeRegions') == 'ok'
    assert script.calls == 4
    assert pol.retried_codes == {'Connection': 3}


# -- the deadline, not the attempt count, ends the retries ----------------------------------------------------------
def test_with_deadline_max_attempts_default_does_not_end_retries_early():
    fake = FakeTime(start=0.0)
    pol, dummy = policy(deadline=600.0, rng=lambda: 0.5, fake=fake)
    script = Script(*[refused() for dummy in range(DEFAULT_MAX_ATTEMPTS + 30)])
    assert pol.run(script, action='DescribeRegions') == 'ok'
    assert script.calls == DEFAULT_MAX_ATTEMPTS + 31
    assert fake.now < 600.0


def test_with_deadline_connection_failures_end_at_the_deadline():
    fake = FakeTime(start=0.0)
    pol, dummy = policy(deadline=30.0, rng=lambda: 1.0, fake=fake)
    script = Script(*[refused() for dummy in range(1000)])
    with pytest.raises(CloudAssistantError) as info:
        pol.run(script, action='DescribeRegions')
    assert info.value.kind == 'connection'
    # 0.25 + 0.5 + 1 + 2 + 4 + 5 * 4 = 27.75; one more 5 s wait would end at 32.75
    assert fake.now == pytest.approx(27.75)
    assert script.calls == 10


def test_slow_connection_failures_do_not_start_an_attempt_that_would_end_past_the_deadline():
    fake = FakeTime(start=0.0)
    pol, dummy = policy(deadline=40.0, rng=lambda: 0.0, fake=fake)

    def hangs_then_times_out():
        fake.now += 15.0  # a read timeout
        raise timeout()
    with pytest.raises(CloudAssistantError) as info:
        pol.run(hangs_then_times_out, action='DescribeRegions')
    assert 'Read timed out' in info.value.msg
    # attempts end at 15 and 30; a third one, timing out the same way, would end at 45 > 40
    assert fake.now == 30.0


def test_slow_answers_are_not_held_against_the_deadline():
    fake = FakeTime(start=0.0)
    pol, dummy = policy(deadline=40.0, rng=lambda: 0.0, fake=fake)
    errors = [throttled(), throttled()]

    def slow_throttled():
        fake.now += 15.0
        if errors:
            raise errors.pop()
        return 'ok'
    assert pol.run(slow_throttled, action='DescribeRegions') == 'ok'  # the third attempt starts at 30 and ends at 45
    assert fake.now == 45.0


def test_sleeps_never_end_past_the_deadline():
    for seed in range(200):
        rng = random.Random(seed)
        fake = FakeTime(start=0.0)
        deadline = rng.uniform(0.1, 60.0)

        def sleep(seconds, fake=fake, deadline=deadline):
            assert fake.now + seconds < deadline
            fake.sleep(seconds)
        pol = RetryPolicy(deadline=deadline, clock=fake.clock, sleep=sleep, rng=rng.random)
        makers = [refused, reset, timeout, throttled, lambda: throttled(retry_after=rng.randint(1, 9000))]

        def fails():
            fake.now += rng.choice([0.0, 0.0, rng.uniform(0.0, 5.0)])  # an answer, or a slow failure
            raise rng.choice(makers)()
        with pytest.raises(CloudAssistantError):
            pol.run(fails, action='DescribeRegions')
        assert all(wait >= 0 for wait in fake.sleeps)
        assert fake.now < deadline + 5.0  # only an attempt itself may run past it


def test_explicit_max_attempts_is_honoured_with_a_deadline():
    pol, fake = policy(deadline=1600.0, max_attempts=3)
    script = Script(*[refused() for dummy in range(10)])
    with pytest.raises(CloudAssistantError):
        pol.run(script, action='DescribeRegions')
    assert script.calls == 3


def test_infinite_deadline_falls_back_to_the_attempt_cap():
    pol, fake = policy(deadline=float('inf'))
    script = Script(*[refused() for dummy in range(DEFAULT_MAX_ATTEMPTS + 10)])
    with pytest.raises(CloudAssistantError):
        pol.run(script, action='DescribeRegions')
    assert script.calls == DEFAULT_MAX_ATTEMPTS


def test_deadline_set_after_construction_is_used():
    fake = FakeTime(start=0.0)
    pol, dummy = policy(rng=lambda: 1.0, fake=fake)
    pol.deadline = 2.0  # as CommandModule does once the run's timeout is known
    script = Script(*[refused() for dummy in range(100)])
    with pytest.raises(CloudAssistantError):
        pol.run(script, action='DescribeRegions')
    assert fake.sleeps == pytest.approx([0.25, 0.5, 1.0])


# -- the real SDK against 127.0.0.1 ---------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.end_headers()
        self.wfile.write(b'{"RequestId": "R", "Regions": {"Region": []}}')

    do_GET = do_POST

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


@pytest.fixture
def plain_http_port():
    server = HTTPServer(('127.0.0.1', 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _free_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _sdk_call(endpoint, protocol):
    from alibabacloud_ecs20140526 import client as ecs_client
    from alibabacloud_ecs20140526 import models as ecs_models
    from alibabacloud_tea_openapi import models as openapi_models
    from darabonba import runtime
    config = openapi_models.Config(access_key_id='AKIDEXAMPLE', access_key_secret='secret', endpoint=endpoint,
                                   protocol=protocol, region_id='cn-hangzhou')
    client = ecs_client.Client(config)
    try:
        client.describe_regions_with_options(ecs_models.DescribeRegionsRequest(),
                                             runtime.RuntimeOptions(connect_timeout=2000, read_timeout=2000))
    except Exception as exc:  # pylint: disable=broad-except
        return exc
    raise AssertionError('the call did not fail')


@pytest.fixture
def local_only(monkeypatch):
    for name in ('HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'ALL_PROXY', 'all_proxy'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('ALIBABA_CLOUD_ECS_METADATA_DISABLED', 'true')
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == 'nonexistent.invalid':
            raise socket.gaierror(-2, 'Name or service not known')
        if host == 'again.invalid':
            raise socket.gaierror(-3, 'Temporary failure in name resolution')
        assert host in ('127.0.0.1', 'localhost'), host  # nothing leaves the machine
        return real(host, *args, **kwargs)
    monkeypatch.setattr(socket, 'getaddrinfo', getaddrinfo)


def test_live_sdk_transport_errors(local_only, plain_http_port):  # pylint: disable=redefined-outer-name,unused-argument
    cases = [
        ('127.0.0.1:%d' % _free_port(), 'http', True, 'connection', '[Errno 111] Connection refused'),
        ('127.0.0.1:%d' % plain_http_port, 'https', False, 'tls', 'wrong version number'),
        ('nonexistent.invalid', 'https', False, 'dns', 'host name nonexistent.invalid does not resolve'),
        ('again.invalid', 'https', True, 'connection', 'Temporary failure in name resolution'),
    ]
    for endpoint, protocol, retryable, kind, text in cases:
        exc = _sdk_call(endpoint, protocol)
        assert type(exc).__name__ == 'UnretryableException', endpoint
        assert type(exc.inner_exception).__name__ == 'RetryError'
        assert RetryPolicy().retryable(exc) is retryable, endpoint
        err = from_exception('DescribeRegions', exc)
        assert (err.kind, text in err.msg) == (kind, True), err.msg
