# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import (
    CloudAssistantError,
    from_exception,
    short_reason,
)

sdk_exceptions = pytest.importorskip('alibabacloud_tea_openapi.exceptions')
dara_exceptions = pytest.importorskip('darabonba.exceptions')
credential_exceptions = pytest.importorskip('alibabacloud_credentials.exceptions')
from darabonba.policy.retry import RetryPolicyContext  # noqa: E402  pylint: disable=wrong-import-position
from darabonba.request import DaraRequest  # noqa: E402  pylint: disable=wrong-import-position

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
     'Connection aborted'),
    ("HTTPSConnectionPool(host='h', port=443): Max retries exceeded with url: /?a=b (Caused by SSLError("
     "SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
     "certificate (_ssl.c:1006)')))", 'certificate verify failed: self-signed certificate (_ssl.c:1006'),
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
