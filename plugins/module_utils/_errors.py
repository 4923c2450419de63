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
* no answer at all (connection refused, timeout, reset, TLS failure): ``darabonba.exceptions.UnretryableException``
  wrapping the transport error (``.inner_exception``, usually a ``RetryError``) and the request (``.last_request``);
  the same wrapper also carries credential failures (``CredentialException``) raised while signing.

The classes are recognised by attributes and class names, not by ``isinstance``, so this file imports nothing
from the SDK and works (and is unit-testable) whether or not the SDK is installed.
"""

from __future__ import annotations

import re

# Longest message (in characters) taken from an exception this file knows nothing about.
_MAX_FOREIGN_MESSAGE = 300

# "code: 404, The specified instance does not exist. request id: 1234-..." (tea_openapi's ResponseException.message)
_SDK_MESSAGE_RE = re.compile(r'^code: \d+, (?P<message>.*?)(?: request id: (?P<request_id>\S*))?\s*$', re.DOTALL)


class CloudAssistantError(Exception):
    """A failure with a readable ``msg`` plus the API's own fields when there was an API answer.

    Attributes: ``msg`` (the whole sentence for ``fail_json``), ``action`` (API action, or None), ``code`` (the
    API error code such as ``Throttling.User``, or None), ``message`` (the API's own message), ``request_id``,
    ``recommend`` (the diagnosis URL the API returns), ``status_code`` (HTTP status, or None), ``retry_after``
    (milliseconds, from ``x-acs-retry-after``, or None) and ``kind``: ``api`` (an error answer), ``connection``
    (no answer), ``credentials`` (credentials could not be obtained), ``config`` (invalid options) or ``other``.
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


def _shorten(text, limit=_MAX_FOREIGN_MESSAGE):
    text = ' '.join(str(text).split())
    if len(text) > limit:
        text = text[:limit - 3].rstrip() + '...'
    return text


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
        return _shorten(head.rstrip('.') + '. (The string to sign the server quoted is left out.)')
    return message


def _prefix(action):
    return '%s failed: ' % action if action else ''


def _is_response_exception(exc):
    """An HTTP error answer from the SDK (ClientException, ServerException, ThrottlingException, ...)."""
    return hasattr(exc, 'status_code') and hasattr(exc, 'code') and hasattr(exc, 'data') and \
        not hasattr(exc, 'inner_exception')


def class_names(exc):
    """Names of the exception's classes: the SDK's exception types are matched by name, so that this module
    imports without the SDK (and across SDK versions that moved them)."""
    return set(cls.__name__ for cls in type(exc).__mro__)


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


# Pieces of transport error texts, most specific first. requests/urllib3 messages embed the whole URL (with the
# request's query string) and nested reprs; only the cause is useful to a user.
_ERRNO_RE = re.compile(r'\[Errno -?\d+\] [^\'")\]]+')
_TIMEOUT_RE = re.compile(r'(Read timed out|Connection timed out|timed out|Connection reset by peer|Connection aborted'
                         r'|Remote end closed connection without response|certificate verify failed[^\'")\]]*'
                         r'|RemoteDisconnected|Server disconnected)', re.IGNORECASE)
_URL_RE = re.compile(r'(url: |https?://)\S+')


def short_reason(text):
    """The useful part of a transport error message, without URLs (they would carry the whole query string)."""
    text = str(text or '')
    match = _ERRNO_RE.search(text)
    if match:
        return match.group(0).strip()
    match = _TIMEOUT_RE.search(text)
    if match:
        return match.group(0).strip()
    text = _URL_RE.sub('', text)
    return _shorten(text or 'connection failed', 200)


def _unretryable_error(action, exc):
    inner = getattr(exc, 'inner_exception', None)
    if inner is not None and is_credential_exception(inner):
        return _credentials_error(action, inner)
    if inner is not None and _is_response_exception(inner):
        return _api_error(action, inner)
    reason = getattr(inner, 'message', None) or (str(inner) if inner is not None else '') or str(exc)
    msg = '%scould not reach %s: %s' % (_prefix(action), _endpoint_of(exc), short_reason(reason))
    return CloudAssistantError(msg, action=action, kind='connection')


def _credentials_error(action, exc):
    message = _text(getattr(exc, 'message', None)) or _text(str(exc)) or type(exc).__name__
    message = _shorten(message, 500)
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
        return CloudAssistantError('%scould not reach the endpoint: %s' % (_prefix(action), short_reason(reason)),
                                   action=action, kind='connection')
    text = _text(getattr(exc, 'message', None)) or _text(str(exc))
    detail = type(exc).__name__ + (': ' + _shorten(text) if text else '')
    return CloudAssistantError(_prefix(action) + detail, action=action, message=text, kind='other')
