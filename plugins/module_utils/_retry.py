# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Which failed API calls are tried again, how long to wait in between, and when to give up.

The SDK itself does not retry (``Config.retry_options`` is unset, its default), so every retry happens here,
under one deadline, and is counted.

Retried:

* error codes ``Throttling`` / ``Throttling.*`` (flow control), ``ServiceUnavailable*``, ``InternalError*``
  (``InternalError.Dispatch`` included) and ``IdempotentProcessing`` (the same ClientToken is still being
  processed: ask again, the answer will be the first request's result);
* any HTTP status >= 500, HTTP 429 whatever its code, and the SDK's ``ThrottlingException`` (an answer with
  ``x-acs-retry-after``);
* no answer at all (``UnretryableException`` wrapping a refused or reset connection, a timeout, a dropped reply,
  or a host name lookup that failed for now: EAI_AGAIN, "Temporary failure in name resolution").

Never retried: authentication, permission and validation errors (every other 4xx code), local credential
failures, failures to reach the endpoint that cannot heal (a failed TLS handshake: https to a plain-HTTP port,
an untrusted certificate; a host name that does not exist: see ``_errors.permanent_transport_failure``), and
anything that is not an API or transport error.

With a deadline, the deadline alone ends the retries: no wait ends after it, and after a failure without an
answer (which may have taken a whole connect or read timeout) no new attempt starts that, failing the same way,
would end after it. ``max_attempts`` only bounds policies without a deadline, unless given explicitly.

A request that is not idempotent (``idempotent=False``: a RunCommand/InvokeCommand/CreateCommand/SendFile without
a ClientToken, and always RebootInstance and InstallCloudAssistant, which take none) is only retried when the
service certainly did not act on it, which only a throttling answer guarantees: after a 5xx or a lost reply it may
have run, and running a command twice (or restarting an instance twice) is worse than failing.
"""

from __future__ import annotations

import math
import random
import threading
import time

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import (
    class_names,
    from_exception,
    is_no_answer,
    permanent_transport_failure,
)

RETRYABLE_CODE_PREFIXES = ('Throttling', 'ServiceUnavailable', 'InternalError')
RETRYABLE_CODES = frozenset(['IdempotentProcessing'])

# A safety net for policies without a (finite) deadline; with one, the deadline decides.
DEFAULT_MAX_ATTEMPTS = 50
# An x-acs-retry-after value larger than this is not believed (seconds).
MAX_RETRY_AFTER = 60.0


def _is_throttling(exc):
    """True when the service refused the request without acting on it (flow control)."""
    if 'ThrottlingException' in class_names(exc):
        return True
    code = getattr(exc, 'code', None)
    if isinstance(code, str) and code.startswith('Throttling'):
        return True
    return getattr(exc, 'status_code', None) == 429 and not hasattr(exc, 'inner_exception')  # Too Many Requests


def _is_connection_error(exc):
    """No answer, and trying again may get one: not the failures that cannot heal (TLS handshake, unknown host)."""
    return is_no_answer(exc) and permanent_transport_failure(exc) is None


class RetryPolicy:
    """Full-jitter exponential backoff under an absolute deadline (a ``clock()`` value, or None for no deadline).

    ``run(fn)`` calls ``fn()`` until it returns, raises an error that is not retryable, or the next wait would
    end after the deadline (or, after a failure without an answer, the next attempt would end after it if it
    failed the same way); then the last error is raised (mapped to ``CloudAssistantError`` when ``run`` got an
    ``action``). ``max_attempts`` (default: ``DEFAULT_MAX_ATTEMPTS`` without a deadline, no limit with one) caps
    the calls; ``deadline`` may be changed between calls. ``clock``, ``sleep`` and ``rng`` are injectable for
    tests. One policy may be shared by threads; ``retries`` and ``retried_codes`` count the waits it made (for
    benchmarks and debugging).
    """

    def __init__(self, deadline=None, base_delay=0.25, max_delay=5.0, clock=time.monotonic, sleep=time.sleep,
                 rng=random.random, max_attempts=None):
        self.deadline = deadline
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.max_attempts = None if max_attempts is None else max(1, int(max_attempts))
        self.retried_codes = {}
        self._lock = threading.Lock()

    # -- classification -------------------------------------------------------------------------------------
    def retryable(self, exc, idempotent=True):
        """True when trying ``exc``'s request again is useful and safe."""
        if _is_throttling(exc):
            return True
        if not idempotent:
            return False
        if _is_connection_error(exc):
            return True
        code = getattr(exc, 'code', None)
        if isinstance(code, str):
            if code in RETRYABLE_CODES or code.startswith(RETRYABLE_CODE_PREFIXES):
                return True
        status = getattr(exc, 'status_code', None)
        if status is None and isinstance(getattr(exc, 'data', None), dict):
            status = exc.data.get('statusCode')  # older tea SDKs (TeaException) keep it only there
        try:
            return status is not None and int(status) >= 500
        except (TypeError, ValueError):
            return False

    # -- waiting --------------------------------------------------------------------------------------------
    def delay(self, attempt, exc=None):
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first call).

        Full jitter: uniform in [0, min(max_delay, base_delay * 2 ** (attempt - 1))]. When the error carries
        ``retry_after`` (the SDK's ThrottlingException, from the ``x-acs-retry-after`` header) the wait is at least
        that long. The header is read as **milliseconds**: that is how the SDK's own retry helper uses it
        (darabonba ``DaraCore.get_backoff_time`` returns it unchanged and ``DaraCore.sleep`` takes milliseconds);
        the unit is not confirmed by the API reference (shared/reference/cloud-assistant-api.md §1.6, §9.10).
        """
        attempt = max(1, int(attempt))
        cap = min(self.max_delay, self.base_delay * (2 ** min(attempt - 1, 30)))
        wait = self.rng() * cap
        retry_after = getattr(exc, 'retry_after', None) if exc is not None else None
        if retry_after is not None:
            try:
                floor = float(retry_after) / 1000.0
            except (TypeError, ValueError):
                floor = 0.0
            if floor > 0:
                wait = max(wait, min(floor, MAX_RETRY_AFTER))
        return wait

    # -- running --------------------------------------------------------------------------------------------
    def _note_retry(self, exc):
        code = getattr(exc, 'code', None)
        if not isinstance(code, str) or not code:
            code = 'Connection' if _is_connection_error(exc) else 'HTTP %s' % getattr(exc, 'status_code', '?')
        with self._lock:
            self.retried_codes[code] = self.retried_codes.get(code, 0) + 1

    @property
    def retries(self):
        """How many waits the policy made (every view of ``CloudAssistantApi.with_deadline`` shares the count)."""
        with self._lock:
            return sum(self.retried_codes.values())

    def _finite_deadline(self):
        deadline = self.deadline
        if deadline is None:
            return None
        try:
            deadline = float(deadline)
        except (TypeError, ValueError):
            return None
        return deadline if math.isfinite(deadline) else None

    def _attempt_limit(self, deadline):
        if self.max_attempts is not None:
            return self.max_attempts
        return DEFAULT_MAX_ATTEMPTS if deadline is None else None

    def run(self, fn, action=None, idempotent=True):
        """Call ``fn()`` with retries; see the class docstring. ``action`` names the call in mapped errors."""
        attempt = 0
        while True:
            attempt += 1
            started = self.clock()
            try:
                return fn()
            except Exception as exc:  # pylint: disable=broad-except
                if not self.retryable(exc, idempotent=idempotent):
                    self._give_up(action, exc)
                deadline = self._finite_deadline()
                limit = self._attempt_limit(deadline)
                if limit is not None and attempt >= limit:
                    self._give_up(action, exc)
                wait = self.delay(attempt, exc)
                if deadline is not None:
                    now = self.clock()
                    # an attempt that got no answer may have used a whole connect/read timeout: the next one, if
                    # it fails the same way, must still end before the deadline
                    expected = max(0.0, now - started) if _is_connection_error(exc) else 0.0
                    if now + wait + expected >= deadline:
                        self._give_up(action, exc)
                self._note_retry(exc)
                if wait > 0:
                    self.sleep(wait)

    @staticmethod
    def _give_up(action, exc):
        if action is None:
            raise exc
        raise from_exception(action, exc) from exc
