# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Which of two overlapping runs created a resource: the claim tag.

Saved commands and schedules carry ClientTokens derived from their identity (``_tokens``), so two runs of the
same task at the same moment send the same token and the service creates one resource. Its answer does not say
whether a request created something or repeated an earlier one (reference section 1.8: "same token + same
parameters -> same result"), so both runs would report ``changed``.

Each module run therefore adds one tag that is NOT part of the token, ``CLAIM_TAG`` with a random value of its own
(``new_claim()``). The two requests then share a token but differ in one parameter, and the service answers the
later one with ``IdempotentParameterMismatch`` (section 1.8: "same token + different parameters"):
``is_merged(error)``. That run finds the resource the other one created and reports no change. A service that
left tags out of the comparison would instead hand both runs the same ID; the resource's own claim tag then says
whose request created it (``claimed_by_other``). A retry of a lost reply within one run repeats the claim, so it is
identical and gets the first answer back.
"""

from __future__ import annotations

import os

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import TAG_PREFIX

CLAIM_TAG = TAG_PREFIX + 'claim'
MISMATCH = 'IdempotentParameterMismatch'


def new_claim():
    """A random claim for one module run (16 hex characters)."""
    return os.urandom(8).hex()


def claim_tags(claim):
    """The tag to add to a create request (outside its ClientToken); none without a claim."""
    return {CLAIM_TAG: claim} if claim else {}


def is_merged(error):
    """True when ``error`` says that another request with the same ClientToken came first."""
    return getattr(error, 'code', None) == MISMATCH


def claimed_by_other(tags, claim):
    """True when a resource's ``tags`` ({key: value}) name another run's claim than ``claim``. A resource without
    the tag (made before this tag existed) is not known to be another run's."""
    theirs = (tags or {}).get(CLAIM_TAG)
    return bool(claim) and theirs is not None and theirs != claim
