# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import (
    FAILED_CLASS,
    REJECTED,
    STOPPED_CLASS,
    TERMINAL,
    all_terminal,
    is_terminal,
    summarize,
)


@pytest.mark.parametrize('status', ['Invalid', 'Aborted', 'Success', 'Failed', 'Error', 'Timeout', 'Cancelled',
                                    'Terminated'])
def test_terminal_statuses(status):
    assert is_terminal(status)
    assert status in TERMINAL


@pytest.mark.parametrize('status', ['Pending', 'Scheduled', 'Running', 'Stopping', None, '', 'Skipped'])
def test_non_terminal_statuses(status):
    assert not is_terminal(status)


def test_classes_are_disjoint_and_documented():
    assert FAILED_CLASS == {'Invalid', 'Aborted', 'Failed', 'Timeout', 'Error'}
    assert STOPPED_CLASS == {'Cancelled', 'Terminated'}
    assert not FAILED_CLASS & STOPPED_CLASS


@pytest.mark.parametrize('statuses, expected', [
    (['Success', 'Success'], 'Success'),
    (['Success', 'Failed'], 'PartialFailed'),
    (['Success', 'Timeout', 'Cancelled'], 'PartialFailed'),
    (['Success', 'Cancelled'], 'Success'),
    (['Success', 'Terminated', 'Cancelled'], 'Success'),
    (['Cancelled', 'Terminated'], 'Stopped'),
    (['Failed', 'Cancelled'], 'Failed'),
    (['Aborted', 'Invalid', 'Error'], 'Failed'),
    # an active status wins, in the documented order Pending > Scheduled > Running > Stopping
    (['Success', 'Running'], 'Running'),
    (['Running', 'Pending', 'Failed'], 'Pending'),
    (['Running', 'Scheduled'], 'Scheduled'),
    (['Stopping', 'Running'], 'Running'),
    (['Stopping', 'Success'], 'Stopping'),
    (['Pending', 'Scheduled', 'Running', 'Stopping'], 'Pending'),
])
def test_summarize_follows_reference_3_2(statuses, expected):
    assert summarize(statuses) == expected


def test_summarize_leaves_client_side_values_out():
    assert summarize(['Skipped', 'Success']) == 'Success'
    assert summarize(['Skipped', 'Failed', 'Success']) == 'PartialFailed'
    assert summarize(['Skipped', 'Skipped']) == 'Skipped'
    assert summarize(['NotRun', 'NotRun']) == 'NotRun'
    assert summarize(['Submitted', 'Skipped']) == 'Submitted'
    assert summarize([]) is None
    assert summarize([None, '']) is None


def test_summarize_reports_an_unknown_status_as_is():
    assert summarize(['SomethingNew']) == 'SomethingNew'


def test_all_terminal():
    assert all_terminal([])
    assert all_terminal(['Success', 'Cancelled'])
    assert not all_terminal(['Success', 'Running'])


def test_a_refused_batch_counts_as_failed():
    assert summarize([REJECTED]) == 'Failed'
    assert summarize(['Success', REJECTED]) == 'PartialFailed'
