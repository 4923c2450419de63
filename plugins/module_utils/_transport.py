# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Reading failures to get any answer from the endpoint (requests/urllib3/ssl/socket errors inside the SDK's
wrappers): the short reason a user can act on, and whether trying again can heal them.

``_errors`` builds the ``CloudAssistantError`` from these; ``_retry`` decides with them. Messages never quote a
URL: requests and urllib3 put the whole query string (with a security token) in theirs.
"""

from __future__ import annotations

import re
import socket

try:
    import ssl
except ImportError:  # pragma: no cover - Python built without ssl
    ssl = None


def class_names(exc):
    """Names of the exception's classes: the SDK's exception types are matched by name, so that this module
    imports without the SDK (and across SDK versions that moved them)."""
    return set(cls.__name__ for cls in type(exc).__mro__)


def shorten(text, limit=300):
    """``text`` on one line, cut to ``limit`` characters."""
    text = ' '.join(str(text).split())
    if len(text) > limit:
        text = text[:limit - 3].rstrip() + '...'
    return text


# Pieces of transport error texts, most specific first. requests/urllib3 messages embed the whole URL (with the
# request's query string) and nested reprs; only the cause is useful to a user.
_ERRNO_RE = re.compile(r'\[Errno -?\d+\] [^\'")\]]+')
# "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)" without the OpenSSL source location
_SSL_RE = re.compile(r'\[SSL(?:: [A-Z0-9_]+)?\] .*?(?= \(_ssl\.c:\d+\)|\'\)|"\)|\)\)|$)')
_REASON_RES = [re.compile(pattern, re.IGNORECASE) for pattern in (
    r'Read timed out',
    r'Connection to [^\s\'"]+ timed out',
    r'Connection timed out',
    r'The handshake operation timed out',
    r'timed out',
    r'Connection reset by peer',
    r'Remote end closed connection without response',
    r'Connection refused',
    r'certificate verify failed[^\'")\]]*',
    r'Connection aborted',
    r'RemoteDisconnected',
    r'Server disconnected',
)]
_URL_RE = re.compile(r'(url: |https?://)\S+')


def short_reason(text):
    """The useful part of a transport error message, without URLs (they would carry the whole query string)."""
    text = str(text or '')
    for regex in [_ERRNO_RE, _SSL_RE] + _REASON_RES:
        match = regex.search(text)
        if match and match.group(0).strip():
            return match.group(0).strip()
    text = _URL_RE.sub('', text)
    return shorten(text or 'connection failed', 200)


# -- failures to get an answer that trying again cannot heal ----------------------------------------------------------
# An ssl.SSLError of one of these classes means the connection was closed or reset during the TLS exchange: a lost
# connection like any other (retryable), not a TLS misconfiguration.
_TLS_LOST_CONNECTION_CLASSES = frozenset(['SSLEOFError', 'SSLZeroReturnError', 'SSLSyscallError', 'SSLWantReadError',
                                          'SSLWantWriteError'])
_TLS_LOST_CONNECTION_TEXTS = ('unexpected_eof', 'eof occurred in violation of protocol', 'ssleoferror',
                              'sslzeroreturnerror', 'sslsyscallerror', 'tls/ssl connection has been closed')
# Texts of TLS failures, for when the ssl.SSLError itself is no longer in the exception chain.
_TLS_TEXTS = ('[ssl', 'sslerror(', 'sslcertverificationerror', 'certificate_verify_failed', 'certificate verify failed',
              'wrong version number', 'wrong_version_number', 'unknown protocol', 'tlsv1 alert', 'sslv3 alert',
              'handshake failure', 'unsupported protocol')


def _errnos(*names):
    return frozenset(getattr(socket, name) for name in names if isinstance(getattr(socket, name, None), int))


# getaddrinfo answers that are final: the name does not exist, has no address, or the name server said so for good.
# EAI_AGAIN ("Temporary failure in name resolution": no name server answered in time) may heal and is retried.
# 11001/11004 are Windows' WSAHOST_NOT_FOUND/WSANO_DATA.
_DNS_PERMANENT_ERRNOS = _errnos('EAI_NONAME', 'EAI_NODATA', 'EAI_FAIL', 'EAI_ADDRFAMILY') | frozenset([11001, 11004])
_DNS_PERMANENT_TEXTS = ('name or service not known', 'nodename nor servname provided', 'no address associated with',
                        'non-recoverable failure in name resolution', 'getaddrinfo failed', 'no such host is known')
_DNS_TRANSIENT_TEXTS = ('temporary failure in name resolution', '[errno 11002]')
_RESOLVE_HOST_RES = [re.compile(r"Failed to resolve '([^'\s/?]+)'"), re.compile(r"host='([^'\s/?]+)'")]


def exception_chain(exc, limit=32):
    """``exc`` and the exceptions behind it, outermost first: darabonba's ``inner_exception``, ``__cause__``,
    ``__context__``, urllib3's ``reason`` and exceptions passed as arguments (urllib3's ``ProtocolError``)."""
    found, seen, todo = [], set(), [exc]
    while todo and len(found) < limit:
        current = todo.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        todo.extend(getattr(current, name, None) for name in ('inner_exception', 'reason', '__cause__', '__context__'))
        args = getattr(current, 'args', None)
        if isinstance(args, tuple):
            todo.extend(args)
    return found


def chain_texts(chain):
    texts = []
    for exc in chain:
        message = getattr(exc, 'message', None)
        if isinstance(message, str):
            texts.append(message)
        try:
            texts.append(str(exc))
        except Exception:  # pylint: disable=broad-except
            pass
        texts.append(type(exc).__name__ + '(')
    return '\n'.join(texts)


def contains_any(lowered, needles):
    return any(needle in lowered for needle in needles)


def tls_reason(text):
    match = _SSL_RE.search(text)
    if match and match.group(0).strip():
        return match.group(0).strip()
    return short_reason(re.sub(r' ?\(_ssl\.c:\d+\)', '', text))


def is_transient_dns_failure(exc):
    chain = exception_chain(exc)
    if any(isinstance(e, socket.gaierror) for e in chain):
        return True
    return contains_any(chain_texts(chain).lower(), _DNS_TRANSIENT_TEXTS)


def is_transport_exception(exc):
    """True for the exception types in which a failure to get any answer arrives (not for its wrapper)."""
    return isinstance(exc, (OSError, IOError)) or 'RetryError' in class_names(exc) or \
        'Timeout' in type(exc).__name__


def permanent_failure_of_chain(exc):
    """``('tls', reason)``, ``('dns', reason)`` or None for a transport failure ``exc`` (see
    ``_errors.permanent_transport_failure``)."""
    chain = exception_chain(exc)
    if ssl is not None:
        tls = [e for e in chain if isinstance(e, ssl.SSLError)]
        if tls:
            fatal = [e for e in tls if type(e).__name__ not in _TLS_LOST_CONNECTION_CLASSES]
            if fatal:
                return 'tls', tls_reason(str(fatal[-1]))
            return None
    for error in reversed(chain):
        if isinstance(error, socket.gaierror):
            text = str(error)
            number = getattr(error, 'errno', None)
            if number in _DNS_PERMANENT_ERRNOS or (not isinstance(number, int) and
                                                   contains_any(text.lower(), _DNS_PERMANENT_TEXTS)):
                return 'dns', short_reason(text)
            return None
    text = chain_texts(chain)
    lowered = text.lower()
    if contains_any(lowered, _TLS_LOST_CONNECTION_TEXTS):
        return None
    if contains_any(lowered, _TLS_TEXTS):
        return 'tls', tls_reason(text)
    if contains_any(lowered, _DNS_TRANSIENT_TEXTS):
        return None
    if contains_any(lowered, _DNS_PERMANENT_TEXTS):
        return 'dns', short_reason(text)
    return None


def host_in_text(exc):
    """The host name a transport error's text names (``Failed to resolve 'host'``, ``host='host'``), or None."""
    text = chain_texts(exception_chain(exc))
    for regex in _RESOLVE_HOST_RES:
        match = regex.search(text)
        if match:
            return match.group(1)
    return None


def without_urls(text):
    return _URL_RE.sub('', text)
