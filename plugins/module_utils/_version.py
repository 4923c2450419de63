# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""The collection's version, in one place.

Keep COLLECTION_VERSION equal to ``version`` in galaxy.yml (a unit test compares them). Nothing else in the
collection spells the version out: the user agent (``_client.py``) reads it from here.
"""

from __future__ import annotations

COLLECTION_NAME = 'alicloud_ops.cloud_assistant'
COLLECTION_VERSION = '0.2.0'
