# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests never let the SDK's credential chain ask the ECS instance metadata address (the library reads this
variable when it is imported, so it is set before any test module imports the SDK)."""

from __future__ import annotations

import os

os.environ['ALIBABA_CLOUD_ECS_METADATA_DISABLED'] = 'true'
