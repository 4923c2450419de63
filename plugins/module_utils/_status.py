# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Cloud Assistant execution status model, client side (reference cloud-assistant-api.md section 3).

Per-instance ``InvocationStatus`` values (section 3.1) and the overall status of several instances (section 3.2).
The collection derives the overall status itself with ``summarize()`` because one logical run may span several
invocations (batches of 100 instances) and some instances may be left out (guards).
"""

from __future__ import annotations

# Section 3.1.
PENDING = 'Pending'
SCHEDULED = 'Scheduled'
RUNNING = 'Running'
STOPPING = 'Stopping'
SUCCESS = 'Success'

FAILED_CLASS = frozenset(('Invalid', 'Aborted', 'Failed', 'Timeout', 'Error'))
STOPPED_CLASS = frozenset(('Cancelled', 'Terminated'))
TERMINAL = frozenset(FAILED_CLASS | STOPPED_CLASS | frozenset((SUCCESS,)))
# Not terminal, in the precedence the overall status uses (section 3.2, section 9.7: doc order).
ACTIVE_PRECEDENCE = (PENDING, SCHEDULED, RUNNING, STOPPING)
ACTIVE = frozenset(ACTIVE_PRECEDENCE)

# Client-side values that never come from the API.
SKIPPED = 'Skipped'        # the creates/removes guard held on the instance; nothing ran there
NOT_RUN = 'NotRun'         # check mode: the run would start here
SUBMITTED = 'Submitted'    # wait=false: the run was accepted and nobody has asked for its status yet
REJECTED = 'Rejected'      # the API refused the batch this instance was in (other batches may have run)

# Overall values (section 3.2).
OVERALL_FAILED = 'Failed'
OVERALL_STOPPED = 'Stopped'
OVERALL_PARTIAL = 'PartialFailed'


def is_terminal(status):
    """True when an instance's execution will not change any more (section 3.1)."""
    return status in TERMINAL


def summarize(statuses):
    """The overall status of several per-instance statuses, with the rules of reference section 3.2.

    - any active status wins, in the order Pending > Scheduled > Running > Stopping;
    - then: any Success and any failed-class -> PartialFailed; Success with only stopped-class -> Success;
      only stopped-class -> Stopped; otherwise (failed-class, possibly with stopped-class) -> Failed.

    Client-side values: ``Skipped`` entries are left out (an instance whose guard held did not run); when every
    entry is ``Skipped`` the result is ``Skipped``. ``NotRun`` / ``Submitted`` behave the same way (all of them ->
    that value). ``Rejected`` counts as failed. An empty input gives ``None``.
    """
    statuses = [s for s in statuses if s]
    if not statuses:
        return None
    considered = [s for s in statuses if s not in (SKIPPED, NOT_RUN, SUBMITTED)]
    if not considered:
        for value in (NOT_RUN, SUBMITTED, SKIPPED):
            if value in statuses:
                return value
    present = set(considered)
    for status in ACTIVE_PRECEDENCE:
        if status in present:
            return status
    has_success = SUCCESS in present
    has_failed = bool(present & FAILED_CLASS) or REJECTED in present
    has_stopped = bool(present & STOPPED_CLASS)
    if has_success and has_failed:
        return OVERALL_PARTIAL
    if has_success:
        return SUCCESS
    if has_failed:
        return OVERALL_FAILED
    if has_stopped:
        return OVERALL_STOPPED
    # Unknown values only (a status this code does not know yet): report the first one as it is.
    return considered[0]


def all_terminal(statuses):
    """True when every status is terminal (an empty list counts as terminal)."""
    return all(is_terminal(s) for s in statuses)
