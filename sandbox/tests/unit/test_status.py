"""sandbox.status: per-instance -> overall / legacy / file statuses (reference §3)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from sandbox.status import (
    FAILED_CLASS,
    STOPPED_CLASS,
    TERMINAL,
    file_overall_status,
    legacy_instance_status,
    legacy_invoke_status,
    overall_status,
    record_status,
)

ALL = ["Pending", "Scheduled", "Running", "Stopping", "Success", "Invalid", "Aborted", "Failed", "Timeout", "Error",
       "Cancelled", "Terminated"]


def test_classes() -> None:
    assert {"Invalid", "Aborted", "Failed", "Timeout", "Error"} == FAILED_CLASS
    assert {"Cancelled", "Terminated"} == STOPPED_CLASS
    assert TERMINAL == FAILED_CLASS | STOPPED_CLASS | {"Success"}
    assert not TERMINAL & {"Pending", "Scheduled", "Running", "Stopping"}


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "Pending"),
        (["Pending"], "Pending"),
        (["Scheduled"], "Scheduled"),
        (["Running"], "Running"),
        (["Stopping"], "Stopping"),
        # precedence Pending > Scheduled > Running > Stopping, whatever the terminal rows
        (["Running", "Pending"], "Pending"),
        (["Stopping", "Scheduled", "Running"], "Scheduled"),
        (["Scheduled", "Pending"], "Pending"),
        (["Stopping", "Running"], "Running"),
        (["Success", "Stopping"], "Stopping"),
        (["Failed", "Running", "Success"], "Running"),
        (["Cancelled", "Pending"], "Pending"),
        # terminal rules
        (["Success"], "Success"),
        (["Success", "Success"], "Success"),
        (["Success", "Cancelled"], "Success"),
        (["Success", "Terminated", "Cancelled"], "Success"),
        (["Success", "Failed"], "PartialFailed"),
        (["Success", "Invalid"], "PartialFailed"),
        (["Success", "Aborted", "Cancelled"], "PartialFailed"),
        (["Success", "Timeout", "Terminated"], "PartialFailed"),
        (["Success", "Error"], "PartialFailed"),
        (["Failed"], "Failed"),
        (["Invalid", "Aborted", "Timeout", "Error", "Failed"], "Failed"),
        (["Failed", "Cancelled"], "Failed"),
        (["Error", "Terminated"], "Failed"),
        (["Cancelled"], "Stopped"),
        (["Terminated"], "Stopped"),
        (["Cancelled", "Terminated"], "Stopped"),
    ],
)
def test_overall_status(statuses: list[str], expected: str) -> None:
    assert overall_status(statuses) == expected
    assert overall_status(reversed(statuses)) == expected  # order never matters
    assert overall_status(iter(statuses)) == expected  # any iterable


@pytest.mark.parametrize("failed", sorted(FAILED_CLASS))
@pytest.mark.parametrize("stopped", [None, *sorted(STOPPED_CLASS)])
def test_overall_success_plus_each_failed_class(failed: str, stopped: str | None) -> None:
    rows = ["Success", failed] + ([stopped] if stopped else [])
    assert overall_status(rows) == "PartialFailed"
    assert overall_status([failed] + ([stopped] if stopped else [])) == "Failed"


def test_overall_every_pair_is_a_known_value() -> None:
    for a, b in itertools.product(ALL, repeat=2):
        assert overall_status([a, b]) in {"Pending", "Scheduled", "Running", "Stopping", "Success", "Failed",
                                          "Stopped", "PartialFailed"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("Pending", "Running"),
        ("Scheduled", "Running"),
        ("Running", "Running"),
        ("Stopping", "Stopping"),
        ("Success", "Finished"),
        ("Failed", "Finished"),
        ("Invalid", "Failed"),
        ("Aborted", "Failed"),
        ("Error", "Failed"),
        ("Timeout", "Failed"),
        ("Cancelled", "Stopped"),
        ("Terminated", "Stopped"),
    ],
)
def test_legacy_instance_and_record_status(status: str, expected: str) -> None:
    assert legacy_instance_status(status) == expected
    assert record_status(status) == expected


@pytest.mark.parametrize(
    ("statuses", "mode", "expected"),
    [
        ([], "Once", "Running"),
        (["Pending"], "Once", "Running"),
        (["Running", "Success"], "Once", "Running"),
        (["Scheduled"], "Period", "Running"),
        (["Scheduled", "Stopping"], "Period", "Running"),
        (["Running", "Success"], "EveryReboot", "Running"),
        (["Scheduled", "Failed"], "NextRebootOnly", "Running"),
        (["Running", "Stopping"], "Once", "Running"),
        (["Stopping", "Success"], "Once", "Stopping"),
        (["Stopping"], "Period", "Stopping"),
        (["Cancelled"], "Once", "Stopped"),
        (["Cancelled", "Terminated"], "Period", "Stopped"),
        # the documented sample: the only instance exited non-zero -> InvocationStatus Failed, InvokeStatus Finished
        (["Failed"], "Once", "Finished"),
        (["Failed", "Success"], "Once", "Finished"),
        (["Failed", "Cancelled"], "Once", "Finished"),
        (["Timeout", "Invalid", "Aborted", "Error"], "Once", "Failed"),
        (["Timeout", "Cancelled"], "Once", "Failed"),
        (["Timeout", "Success"], "Once", "PartialFailed"),
        (["Aborted", "Failed"], "Once", "PartialFailed"),
        (["Success"], "Once", "Finished"),
        (["Success", "Cancelled"], "Once", "Finished"),
        (["Success", "Terminated", "Success"], "Period", "Finished"),
    ],
)
def test_legacy_invoke_status(statuses: list[str], mode: str, expected: str) -> None:
    assert legacy_invoke_status(statuses, mode) == expected


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "Pending"),
        (["Pending"], "Pending"),
        (["Pending", "Running", "Success"], "Pending"),
        (["Running", "Failed"], "Running"),
        (["Success"], "Success"),
        (["Success", "Success"], "Success"),
        (["Failed"], "Failed"),
        (["Invalid", "Aborted", "Failed", "Timeout", "Error"], "Failed"),
        (["Success", "Failed"], "PartialFailed"),
        (["Success", "Timeout", "Invalid"], "PartialFailed"),
    ],
)
def test_file_overall_status(statuses: list[str], expected: str) -> None:
    assert file_overall_status(statuses) == expected


@pytest.mark.parametrize(
    "call",
    [
        lambda: overall_status(["Finished"]),
        lambda: overall_status(["running"]),
        lambda: legacy_instance_status("Done"),
        lambda: record_status(""),
        lambda: legacy_invoke_status(["Success", "Bogus"], "Once"),
        lambda: file_overall_status(["Scheduled"]),
        lambda: file_overall_status(["Cancelled"]),
    ],
)
def test_unknown_status_is_a_bug(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="unknown status"):
        call()
