# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""One error type for everything that can go wrong between a module or plugin and the ECS API.

``from_exception(action, exc)`` turns whatever the SDK raised into a ``CloudAssistantError`` whose ``msg`` a
module can pass straight to ``fail_json`` (with ``**error.result()`` for the structured fields)::

    RunCommand failed: InvalidInstance.NotFound: The specified instance does not exist. (RequestId: 1234-...)

What the SDK raises (alibabacloud_tea_openapi 0.4, darabonba-core 1.0):

* an HTTP error answer: ``ClientException`` (4xx), ``ServerException`` (5xx) or ``ThrottlingException`` (any
  status with a positive ``x-acs-retry-after`` header), all ``darabonba.exceptions.ResponseException``. They carry
  ``.code``, ``.status_code``, ``.request_id``, ``.retry_after``, ``.data`` (the error body: ``Code``, ``Message``,
  ``RequestId``, ``Recommend``, ...) and a ``.message`` formatted ``"code: <status>, <Message> request id: <id>"``;
* no answer at all (connection refused, timeout, reset, TLS failure, unknown host name):
  ``darabonba.exceptions.UnretryableException`` wrapping the transport error (``.inner_exception``, a ``RetryError``
  whose ``.message`` is the text of the ``requests`` exception) and the request (``.last_request``); the same
  wrapper also carries credential failures (``CredentialException``) raised while signing. darabonba raises the
  ``RetryError`` inside its ``except IOError`` block, so its ``__context__`` leads on to the ``requests`` /
  ``urllib3`` exceptions and finally the ``ssl.SSLError``, ``socket.gaierror`` or ``OSError`` at the bottom
  (observed with darabonba-core 1.0.9, requests 2.34, urllib3 2.8)::

      UnretryableException -> RetryError -> requests.exceptions.SSLError -> urllib3 MaxRetryError
          -> urllib3 SSLError -> ssl.SSLError('[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)')
      UnretryableException -> RetryError -> requests ConnectionError -> MaxRetryError -> urllib3 NameResolutionError
          -> socket.gaierror(-2, 'Name or service not known')

Failures to reach the endpoint that retrying cannot heal are told apart (``permanent_transport_failure``): a TLS
handshake that failed (wrong scheme or port, certificate not trusted) and a host name that does not exist. Their
errors have ``kind`` ``tls`` or ``dns`` (not ``connection``), so they are not retried.

The classes are recognised by attributes and class names, not by ``isinstance``, so this file imports nothing
from the SDK and works (and is unit-testable) whether or not the SDK is installed.
"""

from __future__ import annotations

import re

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._transport import (
    class_names,
    host_in_text,
    is_transient_dns_failure,
    is_transport_exception,
    permanent_failure_of_chain,
    short_reason,
    shorten,
    without_urls,
)

# "code: 404, The specified instance does not exist. request id: 1234-..." (tea_openapi's ResponseException.message)
_SDK_MESSAGE_RE = re.compile(r'^code: \d+, (?P<message>.*?)(?: request id: (?P<request_id>\S*))?\s*$', re.DOTALL)


class CloudAssistantError(Exception):
    """A failure with a readable ``msg`` plus the API's own fields when there was an API answer.

    Attributes: ``msg`` (the whole sentence for ``fail_json``), ``action`` (API action, or None), ``code`` (the
    API error code such as ``Throttling.User``, or None), ``message`` (the API's own message), ``request_id``,
    ``recommend`` (the diagnosis URL the API returns), ``status_code`` (HTTP status, or None), ``retry_after``
    (milliseconds, from ``x-acs-retry-after``, or None) and ``kind``: ``api`` (an error answer), ``connection``
    (no answer, and trying again may help), ``tls`` (the TLS handshake with the endpoint failed), ``dns`` (the
    endpoint's host name does not exist), ``credentials`` (credentials could not be obtained), ``config``
    (invalid options) or ``other``. Only ``api`` and ``connection`` errors can be worth retrying.
    """

    def __init__(self, msg, action=None, code=None, message=None, request_id=None, recommend=None,
                 status_code=None, retry_after=None, kind='other'):
        super(CloudAssistantError, self).__init__(msg)
        self.msg = msg
        self.action = action
        self.code = code
        self.message = message
        self.request_id = request_id
        self.recommend = recommend
        self.status_code = status_code
        self.retry_after = retry_after
        self.kind = kind

    def __str__(self):
        return self.msg

    def result(self):
        """Keys for ``fail_json`` besides ``msg``: ``module.fail_json(msg=err.msg, **err.result())``.

        Only an error the API answered (or that happened during an API call) has an ``error`` dict; bad input
        rejected before any call has just ``msg``."""
        if self.action is None and self.code is None and self.request_id is None:
            return {}
        return {
            'error': {
                'code': self.code,
                'message': self.message,
                'request_id': self.request_id,
                'recommend': self.recommend,
                'action': self.action,
            },
        }


def _text(value):
    """A non-empty string or None (the SDK formats missing values as the string 'None')."""
    if value is None:
        return None
    value = str(value).strip()
    if not value or value == 'None':
        return None
    return value


def _without_signed_text(message):
    """A signature error answer may quote the server's string to sign or canonical request, which can hold an
    STS security token (V1 signs it as a query parameter): keep only the sentence before it."""
    lowered = message.lower()
    cut = min([i for i in (lowered.find('string to sign'), lowered.find('canonical request')) if i >= 0] or
              [len(message)])
    if cut < len(message):
        head = message[:cut].rstrip(' :')
        for word in (' server', ' the server'):
            if head.lower().endswith(word):
                head = head[:-len(word)].rstrip(' .:')
        return shorten(head.rstrip('.') + '. (The string to sign the server quoted is left out.)')
    return message


def _prefix(action):
    return '%s failed: ' % action if action else ''


def _is_response_exception(exc):
    """An HTTP error answer from the SDK (ClientException, ServerException, ThrottlingException, ...)."""
    return hasattr(exc, 'status_code') and hasattr(exc, 'code') and hasattr(exc, 'data') and \
        not hasattr(exc, 'inner_exception')


def is_credential_exception(exc):
    return 'CredentialException' in class_names(exc)


def _api_error(action, exc):
    data = exc.data if isinstance(getattr(exc, 'data', None), dict) else {}
    code = _text(data.get('Code')) or _text(data.get('code')) or _text(getattr(exc, 'code', None))
    request_id = (_text(getattr(exc, 'request_id', None)) or _text(data.get('RequestId'))
                  or _text(data.get('requestId')))
    message = _text(data.get('Message')) or _text(data.get('message'))
    raw = _text(getattr(exc, 'message', None))
    if message is None and raw is not None:
        match = _SDK_MESSAGE_RE.match(raw)
        if match:
            message = _text(match.group('message'))
            request_id = request_id or _text(match.group('request_id'))
        else:
            message = raw
    if message is not None:
        message = _without_signed_text(message)
    recommend = _text(data.get('Recommend')) or _text(data.get('recommend'))
    status_code = getattr(exc, 'status_code', None)
    if status_code is None:
        status_code = data.get('statusCode')
    retry_after = getattr(exc, 'retry_after', None)

    parts = []
    if code:
        parts.append(code)
    elif status_code:
        parts.append('HTTP %s' % status_code)
    if message:
        parts.append(message)
    text = ': '.join(parts) if parts else 'unknown error'
    if request_id:
        text += ' (RequestId: %s)' % request_id
    return CloudAssistantError(_prefix(action) + text, action=action, code=code, message=message,
                               request_id=request_id, recommend=recommend, status_code=status_code,
                               retry_after=retry_after, kind='api')


def _endpoint_of(exc):
    request = getattr(exc, 'last_request', None)
    headers = getattr(request, 'headers', None) or {}
    host = headers.get('host') if isinstance(headers, dict) else None
    if not host:
        return 'the endpoint'
    protocol = _text(getattr(request, 'protocol', None))
    if protocol and '://' not in host:
        return 'the endpoint %s://%s' % (protocol.lower(), host)
    return 'the endpoint %s' % host


def permanent_transport_failure(exc):
    """``('tls', reason)`` or ``('dns', reason)`` when ``exc``, a failure to get any answer from the endpoint, is one
    that trying again cannot heal; None otherwise (including for exceptions that are not transport failures).

    TLS: any ``ssl.SSLError`` in the exception chain (certificate not trusted, ``wrong version number`` when https
    meets a plain-HTTP port, handshake alerts), except the ones that only mean the connection was closed or reset
    during the handshake (``SSLEOFError``, ``SSLZeroReturnError``, ``SSLSyscallError``: a lost connection, retried).
    DNS: ``socket.gaierror`` EAI_NONAME / EAI_NODATA / EAI_FAIL (the name does not exist); EAI_AGAIN ("Temporary
    failure in name resolution") is not permanent. When the original exceptions are not in the chain any more,
    their texts (as requests/urllib3 quote them) decide. A ``CloudAssistantError`` answers by its ``kind``.
    """
    if isinstance(exc, CloudAssistantError):
        return (exc.kind, exc.message or exc.msg) if exc.kind in ('tls', 'dns') else None
    if not is_no_answer(exc):
        return None
    return permanent_failure_of_chain(exc)


def is_no_answer(exc):
    """No answer came: a transport error, bare or in the SDK's UnretryableException (not an error answer, not a
    credential failure), or a ``CloudAssistantError`` made from one."""
    if isinstance(exc, CloudAssistantError):
        return exc.kind in ('connection', 'tls', 'dns')
    if _is_response_exception(exc) or is_credential_exception(exc):
        return False
    if hasattr(exc, 'inner_exception') or 'UnretryableException' in class_names(exc):
        inner = getattr(exc, 'inner_exception', None)
        if inner is None:
            return True
        return not (is_credential_exception(inner) or _is_response_exception(inner)) and is_transport_exception(inner)
    return is_transport_exception(exc)


def _host_of(exc):
    """The endpoint's host name (without port) from the request, or from the transport error's text."""
    request = getattr(exc, 'last_request', None)
    headers = getattr(request, 'headers', None) or {}
    host = _text(headers.get('host')) if isinstance(headers, dict) else None
    if host:
        if host.startswith('['):
            return host.partition(']')[0] + ']'
        if host.count(':') == 1:
            return host.partition(':')[0]
        return host
    return host_in_text(exc)


def _tls_error(action, exc, reason):
    lowered = reason.lower()
    if 'certificate' in lowered:
        hint = "the endpoint's certificate is not trusted: check the endpoint's host name, or validate_certs"
    elif 'wrong version number' in lowered or 'wrong_version_number' in lowered or 'unknown protocol' in lowered:
        hint = "the endpoint does not speak TLS on that port: check the endpoint's scheme/port"
    else:
        hint = "check the endpoint's scheme/port, or validate_certs"
    msg = '%sTLS handshake with %s failed: %s - %s' % (_prefix(action), _endpoint_of(exc), reason, hint)
    return CloudAssistantError(msg, action=action, message=reason, kind='tls')


def _dns_error(action, exc, reason):
    host = _host_of(exc)
    name = 'the endpoint host name %s' % host if host else "the endpoint's host name"
    msg = '%s%s does not resolve (%s) - check the endpoint and region_id' % (_prefix(action), name, reason)
    return CloudAssistantError(msg, action=action, message=reason, kind='dns')


def _transport_error(action, exc, reason_text, endpoint):
    """A CloudAssistantError for a failure to get any answer (``exc``: the SDK's exception)."""
    permanent = permanent_transport_failure(exc)
    if permanent is not None:
        kind, reason = permanent
        return _tls_error(action, exc, reason) if kind == 'tls' else _dns_error(action, exc, reason)
    reason = short_reason(reason_text)
    if is_transient_dns_failure(exc):
        host = _host_of(exc)
        name = 'the endpoint host name %s' % host if host else "the endpoint's host name"
        return CloudAssistantError('%scould not resolve %s: %s' % (_prefix(action), name, reason), action=action,
                                   message=reason, kind='connection')
    return CloudAssistantError('%scould not reach %s: %s' % (_prefix(action), endpoint, reason), action=action,
                               message=reason, kind='connection')


def _unretryable_error(action, exc):
    inner = getattr(exc, 'inner_exception', None)
    if inner is not None and is_credential_exception(inner):
        return _credentials_error(action, inner)
    if inner is not None and _is_response_exception(inner):
        return _api_error(action, inner)
    if inner is not None and not is_transport_exception(inner):
        # something failed while the SDK built the request or read the answer (an answer that is not JSON, an
        # SDK quirk): not a connection failure
        text = _text(getattr(inner, 'message', None)) or _text(str(inner))
        detail = type(inner).__name__ + (': ' + shorten(without_urls(text), 200) if text else '')
        return CloudAssistantError('%sthe request to %s failed: %s' % (_prefix(action), _endpoint_of(exc), detail),
                                   action=action, message=text, kind='other')
    reason = getattr(inner, 'message', None) or (str(inner) if inner is not None else '') or str(exc)
    return _transport_error(action, exc, reason, _endpoint_of(exc))


def _credentials_error(action, exc):
    message = _text(getattr(exc, 'message', None)) or _text(str(exc)) or type(exc).__name__
    message = shorten(message, 500)
    msg = '%scould not obtain Alibaba Cloud credentials: %s' % (_prefix(action), message)
    return CloudAssistantError(msg, action=action, code=_text(getattr(exc, 'code', None)), message=message,
                               request_id=_text(getattr(exc, 'request_id', None)), kind='credentials')


def from_exception(action, exc):
    """Map any exception raised while calling ``action`` to a ``CloudAssistantError`` (never raises itself).

    A ``CloudAssistantError`` comes back as is (its ``action`` filled in when it had none).
    """
    if isinstance(exc, CloudAssistantError):
        if exc.action is None and action:
            exc.action = action
            if not exc.msg.startswith(_prefix(action)):
                exc.msg = _prefix(action) + exc.msg
                exc.args = (exc.msg,)
        return exc
    if hasattr(exc, 'inner_exception'):
        return _unretryable_error(action, exc)
    if is_credential_exception(exc):
        return _credentials_error(action, exc)
    if _is_response_exception(exc) or (_text(getattr(exc, 'code', None)) and hasattr(exc, 'data')):
        return _api_error(action, exc)
    if isinstance(exc, (OSError, IOError)) or 'RetryError' in class_names(exc):
        reason = getattr(exc, 'message', None) or str(exc)
        return _transport_error(action, exc, reason, 'the endpoint')
    text = _text(getattr(exc, 'message', None)) or _text(str(exc))
    detail = type(exc).__name__ + (': ' + shorten(text) if text else '')
    return CloudAssistantError(_prefix(action) + detail, action=action, message=text, kind='other')
