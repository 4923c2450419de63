# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The poll schedule the modules document is the one ``_poller.PollSchedule`` runs: its floor, its share of the
time already waited and its cap are read from the ansible-doc text and compared with the code's defaults."""

from __future__ import annotations

import re

import pytest
import yaml

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import PollSchedule
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_command
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_invocation
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_invocation_info

WORDS = {'tenth': 0.1, 'fifth': 0.2, 'quarter': 0.25, 'half': 0.5}


def polling_text(module, option):
    doc = yaml.safe_load(module.DOCUMENTATION)
    text = ' '.join(doc['options'][option]['description'])
    match = re.search(r'every ([0-9.]+) seconds at first, then every (\w+) of the time already waited, at most\s+'
                      r'every ([0-9.]+) seconds', text)
    assert match, text
    return float(match.group(1)), WORDS[match.group(2)], float(match.group(3))


@pytest.mark.parametrize('module, option', [
    (cloud_assistant_command, 'wait_timeout'),
    (cloud_assistant_invocation, 'wait_timeout'),
    (cloud_assistant_invocation_info, 'wait'),
])
def test_documented_poll_schedule_is_the_code_default(module, option):
    schedule = PollSchedule()
    assert polling_text(module, option) == (schedule.floor, schedule.ratio, schedule.cap)


def test_documented_schedule_holds_at_its_landmarks():
    schedule = PollSchedule()
    assert schedule.next_delay(0, 0) == schedule.floor      # at first
    assert schedule.next_delay(30, 5) == pytest.approx(3.0)  # a tenth of 30 s
    assert schedule.next_delay(600, 50) == schedule.cap     # capped


def test_command_documents_one_tag_filtered_poll_for_all_batches():
    doc = yaml.safe_load(cloud_assistant_command.DOCUMENTATION)
    text = ' '.join(doc['options']['wait_timeout']['description'])
    assert 'one tag-filtered C(DescribeInvocations) covering every batch' in text
