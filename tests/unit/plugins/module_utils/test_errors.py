# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import socket
import ssl

import pytest

from alibabacloud_tea_openapi import exceptions as sdk_exceptions
from darabonba import exceptions as dara_exceptions
from alibabacloud_credentials import exceptions as credential_exceptions
from darabonba.policy.retry import RetryPolicyContext
from darabonba.request import DaraRequest
from requests import exceptions as requests_exceptions
from urllib3 import exceptions as urllib3_exceptions

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import (
    CloudAssistantError,
    from_exception,
    permanent_transport_failure,
    short_reason,
)


REQUEST_ID = '6A8C1E5B-1234-4D2F-9C1B-0123456789AB'


def error_body(code, message, request_id=REQUEST_ID):
    return {'RequestId': request_id, 'HostId': 'ecs.cn-hangzhou.aliyuncs.com', 'Code': code, 'Message': message,
            'Recommend': 'https://api.aliyun.com/troubleshoot?q=%s&product=Ecs&requestId=%s' % (code, request_id)}


def sdk_error(cls, status, code, message, request_id=REQUEST_ID, data=None, **kwargs):
    """An exception exactly as tea_openapi 0.4 builds it from an error answer."""
    if data is None:
        data = error_body(code, message, request_id)
    return cls(status_code=status, code='%s' % code, message='code: %s, %s request id: %s' % (status, message, request_id),
               detail='None', description='None', data=data, request_id='%s' % request_id, **kwargs)


def unretryable(inner, host='127.0.0.1:8080', protocol='http'):
    request = DaraRequest()
    request.headers = {'host': host}
    request.protocol = protocol
    return dara_exceptions.UnretryableException(RetryPolicyContext(retries_attempted=1, http_request=request,
                                                                   exception=inner))


def test_client_exception_message():
    exc = sdk_error(sdk_exceptions.ClientException, 404, 'InvalidInstance.NotFound',
                    'The specified instance does not exist.')
    err = from_exception('RunCommand', exc)
    assert isinstance(err, CloudAssistantError)
    assert err.msg == ('RunCommand failed: InvalidInstance.NotFound: The specified instance does not exist. '
                       '(RequestId: %s)' % REQUEST_ID)
    assert str(err) == err.msg
    assert (err.action, err.code, err.status_code, err.request_id, err.kind) == (
        'RunCommand', 'InvalidInstance.NotFound', 404, REQUEST_ID, 'api')
    assert err.message == 'The specified instance does not exist.'
    assert err.recommend.startswith('https://api.aliyun.com/troubleshoot?q=InvalidInstance.NotFound')


def test_result_keys_for_fail_json():
    exc = sdk_error(sdk_exceptions.ClientException, 403, 'Forbidden.RAM', 'ecs:RunCommand is denied.')
    result = from_exception('RunCommand', exc).result()
    assert result == {'error': {'code': 'Forbidden.RAM', 'message': 'ecs:RunCommand is denied.', 'request_id': REQUEST_ID,
                                'recommend': error_body('Forbidden.RAM', '')['Recommend'], 'action': 'RunCommand'}}
    assert 'msg' not in result


def test_server_exception():
    exc = sdk_error(sdk_exceptions.ServerException, 503, 'ServiceUnavailable', 'The request has failed due to a '
                    'temporary failure of the server.')
    err = from_exception('DescribeInvocations', exc)
    assert err.msg.startswith('DescribeInvocations failed: ServiceUnavailable: The request has failed')
    assert err.status_code == 503


def test_throttling_exception_keeps_retry_after():
    exc = sdk_error(sdk_exceptions.ThrottlingException, 400, 'Throttling.User', 'Request was denied due to user flow '
                    'control.', retry_after=250)
    err = from_exception('RunCommand', exc)
    assert err.code == 'Throttling.User'
    assert err.retry_after == 250
    assert 'Request was denied due to user flow control.' in err.msg


def test_message_parsed_from_sdk_text_when_body_has_none():
    exc = sdk_error(sdk_exceptions.ClientException, 400, 'InvalidParameter', 'ignored', data={'statusCode': 400})
    exc.message = 'code: 400, The parameter X is invalid. request id: ABC-1'
    exc.request_id = 'None'
    err = from_exception('RunCommand', exc)
    assert err.message == 'The parameter X is invalid.'
    assert err.request_id == 'ABC-1'
    assert err.msg == 'RunCommand failed: InvalidParameter: The parameter X is invalid. (RequestId: ABC-1)'


def test_local_sdk_client_exception_without_answer():
    # raised by tea_openapi itself when it has no credentials at all
    exc = sdk_exceptions.ClientException(code='InvalidCredentials', message='Please set up the credentials correctly.')
    err = from_exception('DescribeRegions', exc)
    assert err.msg == 'DescribeRegions failed: InvalidCredentials: Please set up the credentials correctly.'
    assert err.request_id is None


def test_code_missing_uses_http_status():
    exc = sdk_error(sdk_exceptions.ServerException, 502, None, 'Bad gateway', data={'statusCode': 502})
    exc.message = 'code: 502, None request id: None'
    exc.request_id = 'None'
    err = from_exception('DescribeRegions', exc)
    assert err.code is None
    assert err.msg == 'DescribeRegions failed: HTTP 502'


def test_connection_refused():
    inner = dara_exceptions.RetryError(
        "HTTPConnectionPool(host='127.0.0.1', port=8080): Max retries exceeded with url: "
        "/?CommandContent=ZWNobyBzZWNyZXQ%3D&InstanceId.1=i-1 (Caused by NewConnectionError('<urllib3.connection."
        "HTTPConnection object at 0x7f>: Failed to establish a new connection: [Errno 111] Connection refused'))")
    err = from_exception('RunCommand', unretryable(inner))
    assert err.msg == 'RunCommand failed: could not reach the endpoint http://127.0.0.1:8080: [Errno 111] Connection refused'
    assert err.kind == 'connection'
    assert 'CommandContent' not in err.msg


def test_read_timeout():
    inner = dara_exceptions.RetryError("HTTPSConnectionPool(host='ecs.cn-hangzhou.aliyuncs.com', port=443): Read timed "
                                       "out. (read timeout=15.0)")
    err = from_exception('DescribeInvocations', unretryable(inner, 'ecs.cn-hangzhou.aliyuncs.com', 'https'))
    assert err.msg == ('DescribeInvocations failed: could not reach the endpoint https://ecs.cn-hangzhou.aliyuncs.com: '
                       'Read timed out')


def test_credentials_failure_inside_unretryable():
    inner = credential_exceptions.CredentialException('unable to load credentials from any of the providers in the chain')
    err = from_exception('DescribeRegions', unretryable(inner))
    assert err.kind == 'credentials'
    assert err.msg == ('DescribeRegions failed: could not obtain Alibaba Cloud credentials: unable to load credentials '
                       'from any of the providers in the chain')
    assert 'endpoint' not in err.msg


def test_unretryable_reraises_api_errors_itself():
    # darabonba's UnretryableException re-raises a ResponseException instead of wrapping it
    api_error = sdk_error(sdk_exceptions.ClientException, 404, 'InvalidRegionId.NotFound', 'No such region.')
    with pytest.raises(sdk_exceptions.ClientException):
        unretryable(api_error)


def test_anything_else_is_short_without_traceback():
    err = from_exception('RunCommand', ValueError('x' * 1000))
    assert err.msg.startswith('RunCommand failed: ValueError: xxx')
    assert len(err.msg) < 400
    assert 'Traceback' not in err.msg
    assert err.kind == 'other'


def test_exception_without_text():
    assert from_exception('RunCommand', KeyError()).msg == 'RunCommand failed: KeyError'


def test_cloud_assistant_error_passes_through():
    original = CloudAssistantError('bad endpoint', kind='config')
    err = from_exception('RunCommand', original)
    assert err is original
    assert err.action == 'RunCommand'
    assert err.msg == 'RunCommand failed: bad endpoint'
    again = from_exception('RunCommand', err)
    assert again.msg == 'RunCommand failed: bad endpoint'


def test_os_error():
    err = from_exception('RunCommand', ConnectionResetError(104, 'Connection reset by peer'))
    assert err.kind == 'connection'
    assert 'Connection reset by peer' in err.msg


@pytest.mark.parametrize('text, expected', [
    ("... (Caused by NewConnectionError('<x>: Failed to establish a new connection: [Errno -2] Name or service not "
     "known'))", '[Errno -2] Name or service not known'),
    ("('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))",
     'Remote end closed connection without response'),
    ("('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))", 'Connection reset by peer'),
    ("HTTPSConnectionPool(host='h', port=443): Max retries exceeded with url: /?a=b (Caused by SSLError("
     "SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
     "certificate (_ssl.c:1006)')))",
     '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate'),
    ("HTTPSConnectionPool(host='127.0.0.1', port=8443): Max retries exceeded with url: / (Caused by SSLError(SSLError("
     "1, '[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)')))",
     '[SSL: WRONG_VERSION_NUMBER] wrong version number'),
    ("HTTPSConnectionPool(host='h', port=443): Max retries exceeded with url: /?a=b (Caused by ConnectTimeoutError("
     "<x>, 'Connection to h timed out. (connect timeout=5.0)'))", 'Connection to h timed out'),
    ('Server disconnected', 'Server disconnected'),
    ('something odd at https://h/?Signature=abc happened', 'something odd at happened'),
])
def test_short_reason(text, expected):
    assert short_reason(text) == expected


def test_result_is_empty_for_input_errors_and_full_for_api_errors():
    assert CloudAssistantError('timeout must be between 10 and 86400').result() == {}
    api = CloudAssistantError('RunCommand failed: X', action='RunCommand', code='X', request_id='R')
    assert api.result()['error']['code'] == 'X'
    assert api.result()['error']['request_id'] == 'R'


def test_signature_error_does_not_pass_on_the_quoted_string_to_sign():
    token = 'CAIS' + 'x' * 40
    quoted = ('Specified signature is not matched with our calculation. server string to sign is:'
              'POST&%2F&AccessKeyId%3DSTS.abc%26SecurityToken%3D' + token)
    err = from_exception('RunCommand', sdk_error(sdk_exceptions.ClientException, 400, 'SignatureDoesNotMatch', quoted))
    assert token not in err.msg and token not in (err.message or '')
    assert 'string to sign' in err.msg  # says what was left out
    assert err.msg.startswith('RunCommand failed: SignatureDoesNotMatch: Specified signature is not matched')


# -- failures to get an answer, shaped as the SDK raises them -------------------------------------------------------
# Observed through alibabacloud_ecs20140526's Client (darabonba-core 1.0.9, requests 2.34, urllib3 2.8) against
# 127.0.0.1: tea_openapi raises UnretryableException(inner_exception=RetryError(str(requests error))); darabonba
# raises the RetryError inside ``except IOError``, so __context__ leads from it through the requests and urllib3
# exceptions down to the ssl.SSLError / socket.gaierror / OSError that started it.
def linked(*layers):
    """Link exceptions innermost first through __context__, as raising each while handling the one before does."""
    for inner, outer in zip(layers, layers[1:]):
        outer.__context__ = inner
    return layers[-1]


def pool_text(cause, host='127.0.0.1', port=8080, scheme='http', url='/'):
    return "%sConnectionPool(host='%s', port=%d): Max retries exceeded with url: %s (Caused by %s)" % (
        scheme.upper(), host, port, url, cause)


def transport(endpoint, protocol, requests_cls, text, *layers):
    requests_error = requests_cls(text)
    retry_error = dara_exceptions.RetryError(text)
    linked(*(layers + (requests_error, retry_error)))
    return unretryable(retry_error, endpoint, protocol)


def refused(port=8080, url='/'):
    conn = ("HTTPConnection(host='127.0.0.1', port=%d): Failed to establish a new connection: [Errno 111] Connection "
            "refused" % port)
    new_conn = urllib3_exceptions.NewConnectionError(None, conn)
    return transport('127.0.0.1:%d' % port, 'http', requests_exceptions.ConnectionError,
                     pool_text('NewConnectionError("%s")' % conn, port=port, url=url),
                     ConnectionRefusedError(111, 'Connection refused'), new_conn,
                     urllib3_exceptions.MaxRetryError(None, url, new_conn))


def tls_failure(ssl_cls, errno, message, port=8443, url='/'):
    bottom = ssl_cls(errno, message)
    wrapper = urllib3_exceptions.SSLError(bottom)
    text = pool_text("SSLError(%s(%d, '%s'))" % (ssl_cls.__name__, errno, message), port=port, scheme='https', url=url)
    return transport('127.0.0.1:%d' % port, 'https', requests_exceptions.SSLError, text, bottom, wrapper,
                     urllib3_exceptions.MaxRetryError(None, url, wrapper))


def wrong_version_number(**kwargs):
    """protocol https against a plain-HTTP listener"""
    return tls_failure(ssl.SSLError, 1, '[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)', **kwargs)


def certificate_verify_failed(**kwargs):
    """an https listener with a self-signed certificate, validate_certs true"""
    return tls_failure(ssl.SSLCertVerificationError, 1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: '
                       'self-signed certificate (_ssl.c:1006)', **kwargs)


def tls_eof():
    """an https listener that closes the connection on the ClientHello"""
    return tls_failure(ssl.SSLEOFError, 8, '[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol '
                       '(_ssl.c:1006)')


def name_not_found(errno=-2, strerror='Name or service not known', host='nonexistent.invalid', url='/'):
    """socket.getaddrinfo raising gaierror (mocked: nothing was sent to a name server)"""
    bottom = socket.gaierror(errno, strerror)
    resolve_cls = getattr(urllib3_exceptions, 'NameResolutionError', None)
    resolve = resolve_cls(host, None, bottom) if resolve_cls else urllib3_exceptions.NewConnectionError(None, 'x')
    cause = ('NameResolutionError("HTTPSConnection(host=\'%s\', port=443): Failed to resolve \'%s\' ([Errno %d] %s)")'
             % (host, host, errno, strerror))
    return transport(host, 'https', requests_exceptions.ConnectionError,
                     pool_text(cause, host=host, port=443, scheme='https', url=url), bottom, resolve,
                     urllib3_exceptions.MaxRetryError(None, url, resolve))


def name_lookup_failed_for_now():
    return name_not_found(-3, 'Temporary failure in name resolution')


def read_timeout(bottom_text='timed out', protocol='http', port=8080):
    text = "%sConnectionPool(host='127.0.0.1', port=%d): Read timed out. (read timeout=15.0)" % (protocol.upper(), port)
    return transport('127.0.0.1:%d' % port, protocol, requests_exceptions.ReadTimeout, text,
                     TimeoutError(bottom_text), urllib3_exceptions.ReadTimeoutError(None, '/', text))


def handshake_timeout():
    """an https listener that accepts and never answers the ClientHello"""
    return read_timeout('_ssl.c:989: The handshake operation timed out', 'https', 8443)


def connection_reset():
    bottom = ConnectionResetError(104, 'Connection reset by peer')
    return transport('127.0.0.1:8080', 'http', requests_exceptions.ConnectionError,
                     "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))", bottom,
                     urllib3_exceptions.ProtocolError('Connection aborted.', bottom))


def text_only(text, endpoint='127.0.0.1:8443', protocol='https'):
    """The same RetryError without the exceptions behind it (its text is all that is left)."""
    return unretryable(dara_exceptions.RetryError(text), endpoint, protocol)


def test_shapes_are_the_sdks():
    exc = wrong_version_number()
    assert type(exc).__name__ == 'UnretryableException'
    assert type(exc.inner_exception).__name__ == 'RetryError'
    assert isinstance(exc.inner_exception.__context__, requests_exceptions.SSLError)
    assert str(exc.inner_exception.message).startswith("HTTPSConnectionPool(host='127.0.0.1', port=8443)")


def test_tls_wrong_version_number():
    err = from_exception('RunCommand', wrong_version_number())
    assert err.kind == 'tls'
    assert err.msg == ("RunCommand failed: TLS handshake with the endpoint https://127.0.0.1:8443 failed: "
                       "[SSL: WRONG_VERSION_NUMBER] wrong version number - the endpoint does not speak TLS on that "
                       "port: check the endpoint's scheme/port")
    assert err.message == '[SSL: WRONG_VERSION_NUMBER] wrong version number'
    assert err.result()['error']['action'] == 'RunCommand'


def test_tls_certificate_verify_failed():
    err = from_exception('DescribeRegions', certificate_verify_failed())
    assert err.kind == 'tls'
    assert err.msg == ("DescribeRegions failed: TLS handshake with the endpoint https://127.0.0.1:8443 failed: "
                       "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate - the "
                       "endpoint's certificate is not trusted: check the endpoint's host name, or validate_certs")


def test_tls_other_alert_generic_hint():
    err = from_exception('DescribeRegions', tls_failure(ssl.SSLError, 1, '[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 '
                                                        'alert handshake failure (_ssl.c:1006)'))
    assert err.kind == 'tls'
    assert err.msg.endswith("[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure - check the "
                            "endpoint's scheme/port, or validate_certs")


@pytest.mark.parametrize('text', [
    pool_text("SSLError(SSLError(1, '[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)'))",
              port=8443, scheme='https'),
    pool_text("SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
              "unable to get local issuer certificate (_ssl.c:1006)'))", port=8443, scheme='https'),
    # aiohttp (the SDK's async client) words it differently
    "Cannot connect to host 127.0.0.1:8443 ssl:True [SSLCertVerificationError: (1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
    "certificate verify failed: self-signed certificate (_ssl.c:1006)')]",
])
def test_tls_recognised_from_text_alone(text):
    err = from_exception('RunCommand', text_only(text))
    assert err.kind == 'tls'
    assert 'ConnectionPool' not in err.msg and '(_ssl.c' not in err.msg


def test_tls_eof_is_a_lost_connection():
    err = from_exception('RunCommand', tls_eof())
    assert err.kind == 'connection'
    assert err.msg == ('RunCommand failed: could not reach the endpoint https://127.0.0.1:8443: '
                       '[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol')
    text = pool_text("SSLError(SSLEOFError(8, '[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of "
                     "protocol (_ssl.c:1006)'))", port=8443, scheme='https')
    assert from_exception('RunCommand', text_only(text)).kind == 'connection'


def test_handshake_timeout_is_a_timeout_not_a_tls_failure():
    err = from_exception('RunCommand', handshake_timeout())
    assert err.kind == 'connection'
    assert err.msg == 'RunCommand failed: could not reach the endpoint https://127.0.0.1:8443: Read timed out'


def test_dns_name_not_found():
    err = from_exception('DescribeRegions', name_not_found())
    assert err.kind == 'dns'
    assert err.msg == ('DescribeRegions failed: the endpoint host name nonexistent.invalid does not resolve '
                       '([Errno -2] Name or service not known) - check the endpoint and region_id')
    assert err.message == '[Errno -2] Name or service not known'


@pytest.mark.parametrize('errno, strerror', [
    (-2, 'Name or service not known'),          # glibc EAI_NONAME
    (-5, 'No address associated with hostname'),  # glibc EAI_NODATA
    (8, 'nodename nor servname provided, or not known'),  # macOS EAI_NONAME
])
def test_dns_name_not_found_from_text_alone(errno, strerror):
    cause = ('NameResolutionError("HTTPSConnection(host=\'ecs.nowhere.example\', port=443): Failed to resolve '
             '\'ecs.nowhere.example\' ([Errno %d] %s)")' % (errno, strerror))
    exc = dara_exceptions.RetryError(pool_text(cause, host='ecs.nowhere.example', port=443, scheme='https'))
    err = from_exception('RunCommand', exc)  # a bare RetryError: no request to take the host from
    assert err.kind == 'dns'
    assert err.msg == ('RunCommand failed: the endpoint host name ecs.nowhere.example does not resolve ([Errno %d] %s) '
                       '- check the endpoint and region_id' % (errno, strerror))


def test_dns_host_name_without_port():
    exc = name_not_found(host='ecs.nowhere.example')
    exc.last_request.headers['host'] = 'ecs.nowhere.example:8443'
    assert 'host name ecs.nowhere.example does not resolve' in from_exception('RunCommand', exc).msg


def test_dns_temporary_failure_is_a_connection_error():
    err = from_exception('DescribeRegions', name_lookup_failed_for_now())
    assert err.kind == 'connection'
    assert err.msg == ('DescribeRegions failed: could not resolve the endpoint host name nonexistent.invalid: '
                       '[Errno -3] Temporary failure in name resolution')


def test_bare_ssl_and_gaierror():
    assert from_exception('RunCommand', ssl.SSLError(1, '[SSL: WRONG_VERSION_NUMBER] wrong version number '
                                                        '(_ssl.c:1006)')).kind == 'tls'
    assert from_exception('RunCommand', socket.gaierror(-2, 'Name or service not known')).kind == 'dns'
    assert from_exception('RunCommand', socket.gaierror(-3, 'Temporary failure in name resolution')).kind == \
        'connection'


@pytest.mark.parametrize('make, expected', [
    (wrong_version_number, 'tls'),
    (certificate_verify_failed, 'tls'),
    (name_not_found, 'dns'),
    (tls_eof, None),
    (name_lookup_failed_for_now, None),
    (refused, None),
    (read_timeout, None),
    (handshake_timeout, None),
    (connection_reset, None),
], ids=lambda value: getattr(value, '__name__', str(value)))
def test_permanent_transport_failure(make, expected):
    result = permanent_transport_failure(make())
    assert (result[0] if result else None) == expected


def test_permanent_transport_failure_ignores_api_errors():
    exc = sdk_error(sdk_exceptions.ClientException, 400, 'InvalidParameter', 'certificate verify failed is not a '
                    'valid Name or service not known')
    assert permanent_transport_failure(exc) is None


def test_connection_refused_real_shape():
    err = from_exception('RunCommand', refused())
    assert err.kind == 'connection'
    assert err.msg == 'RunCommand failed: could not reach the endpoint http://127.0.0.1:8080: [Errno 111] Connection refused'


def test_connection_reset_real_shape():
    err = from_exception('RunCommand', connection_reset())
    assert err.kind == 'connection'
    assert err.msg.endswith('could not reach the endpoint http://127.0.0.1:8080: Connection reset by peer')


def test_read_timeout_real_shape():
    err = from_exception('DescribeInvocations', read_timeout())
    assert err.kind == 'connection'
    assert err.msg == 'DescribeInvocations failed: could not reach the endpoint http://127.0.0.1:8080: Read timed out'


@pytest.mark.parametrize('make', [
    lambda url: wrong_version_number(url=url),
    lambda url: certificate_verify_failed(url=url),
    lambda url: name_not_found(url=url),
    lambda url: name_not_found(-3, 'Temporary failure in name resolution', url=url),
    lambda url: refused(url=url),
])
def test_transport_messages_leave_the_url_out(make):
    token = 'CAIS' + 'z' * 40
    exc = make('/?Action=RunCommand&SecurityToken=%s&Signature=abc' % token)
    err = from_exception('RunCommand', exc)
    for text in (err.msg, err.message or ''):
        assert token not in text
        assert 'Signature' not in text and 'url:' not in text


def test_answer_that_is_not_json_is_not_a_connection_failure():
    # a wrong endpoint answering HTML: tea_openapi fails to parse it and wraps the RuntimeError
    inner = RuntimeError('Failed to parse the value as json format, Value: "<html>Gateway timed out</html>".')
    err = from_exception('DescribeRegions', unretryable(inner))
    assert err.kind == 'other'
    assert err.msg == ('DescribeRegions failed: the request to the endpoint http://127.0.0.1:8080 failed: RuntimeError: '
                       'Failed to parse the value as json format, Value: "<html>Gateway timed out</html>".')
