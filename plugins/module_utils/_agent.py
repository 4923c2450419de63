# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""What a Cloud Assistant agent version supports: the version table and its comparison.

- ``AGENT_FEATURES``: {feature: {os_type: (operator, version)}}, the agent versions the features this collection
  uses need (shared/reference/cloud-assistant-api.md), each with the operator the reference gives it: ``'>'``
  (newer than) or ``'>='`` (at least).
- ``version_tuple(version)``: ``'2.2.3.857'`` -> ``(2, 2, 3, 857)``.
- ``agent_supports(version, os_type)``: {feature: True/False, or None when the version or the OS rule is unknown}.
"""

from __future__ import annotations

import operator

AGENT_FEATURES = {
    # SendFile (§2.10): Linux > 1.0.2.569, Windows > 1.0.0.149
    'send_file': {'linux': ('>', '1.0.2.569'), 'windows': ('>', '1.0.0.149')},
    # built-in parameters {{ACS::InstanceId}}, {{ACS::InvokeId}}, {{ACS::CommandId}} (§2.1): Linux >= 2.2.3.309,
    # Windows >= 2.1.3.309
    'builtin_parameters': {'linux': ('>=', '2.2.3.309'), 'windows': ('>=', '2.1.3.309')},
    # rate() / at() schedules (and year and time zone fields, §2.1.1): Linux >= 2.2.3.282, Windows >= 2.1.3.282; an
    # older agent fails the run with ClientNeedUpgrade
    'rate_at_schedules': {'linux': ('>=', '2.2.3.282'), 'windows': ('>=', '2.1.3.282')},
}

_OPERATORS = {'>': operator.gt, '>=': operator.ge}


def version_tuple(version):
    """``'2.2.3.857'`` -> ``(2, 2, 3, 857)``; None for an empty or malformed version."""
    try:
        parts = tuple(int(part) for part in str(version or '').strip().split('.'))
    except ValueError:
        return None
    return parts or None


def agent_supports(version, os_type):
    """{feature: True/False} for ``AGENT_FEATURES``; None for a feature when the version is unknown (the API
    reports no version for an agent that is not running) or the OS has no rule."""
    have = version_tuple(version)
    result = {}
    for feature, rules in AGENT_FEATURES.items():
        op, floor = rules.get((os_type or '').lower(), (None, None))
        floor = version_tuple(floor)
        result[feature] = None if have is None or floor is None else _OPERATORS[op](have, floor)
    return result
