"""Execution statuses: per-instance -> overall, the legacy status fields, and SendFile statuses (pure).

Reference: cloud-assistant-api.md §3.1 (per-instance values), §3.2 (overall), §3.3 (legacy), §3.5 (SendFile).
Every function raises ValueError on a status string it does not know: the statuses come from our own
database, so an unknown one is a bug to surface, not a value to guess at.
"""

from __future__ import annotations

from collections.abc import Iterable

# §3.1 "Failed class" and "Stopped class".
FAILED_CLASS: frozenset[str] = frozenset({"Invalid", "Aborted", "Failed", "Timeout", "Error"})
STOPPED_CLASS: frozenset[str] = frozenset({"Cancelled", "Terminated"})
# §3.1 terminal statuses (a row in one of these never changes again, except periodic rows rescheduled by the agent).
TERMINAL: frozenset[str] = frozenset({"Success"}) | FAILED_CLASS | STOPPED_CLASS
# Non-terminal per-instance statuses, in the precedence used for the overall status (§3.2).
ACTIVE_PRECEDENCE: tuple[str, ...] = ("Pending", "Scheduled", "Running", "Stopping")
INSTANCE_STATUSES: frozenset[str] = TERMINAL | frozenset(ACTIVE_PRECEDENCE)

# §3.5 per-instance SendFile statuses (no Scheduled/Stopping/Cancelled/Terminated for files).
FILE_STATUSES: frozenset[str] = frozenset({"Pending", "Running", "Success"}) | FAILED_CLASS

REPEATING_MODES: frozenset[str] = frozenset({"Period", "EveryReboot", "NextRebootOnly"})


def _collect(instance_statuses: Iterable[str], known: frozenset[str]) -> set[str]:
    seen = set(instance_statuses)
    unknown = seen - known
    if unknown:
        raise ValueError(f"unknown status value(s): {sorted(unknown)}")
    return seen


def overall_status(instance_statuses: Iterable[str]) -> str:
    """`Invocation.InvocationStatus` of DescribeInvocations from the per-instance statuses (§3.2)."""
    seen = _collect(instance_statuses, INSTANCE_STATUSES)
    if not seen:
        # An invocation always has instances; an empty set can only be seen mid-creation (unconfirmed, §3.2).
        return "Pending"
    # Precedence between the "at least one" rules is undocumented; doc order is used (unconfirmed, §3.2 / §9.7).
    for status in ACTIVE_PRECEDENCE:
        if status in seen:
            return status
    has_success = "Success" in seen
    has_failed = bool(seen & FAILED_CLASS)
    if has_success and has_failed:
        # Success + Failed-class (Stopped-class may also be present) -> PartialFailed (§3.2 resolution).
        return "PartialFailed"
    if has_success:
        # Success + only Stopped-class -> Success (§3.2 resolution of the PartialFailed/Success overlap).
        return "Success"
    if has_failed:
        # Failed-class, maybe with Stopped-class, no Success -> Failed (inference noted in §3.2).
        return "Failed"
    return "Stopped"


def legacy_instance_status(status: str) -> str:
    """`InvokeInstance.InstanceInvokeStatus` from one per-instance status (§3.3)."""
    _collect((status,), INSTANCE_STATUSES)
    if status in ("Pending", "Scheduled", "Running"):
        return "Running"
    if status == "Stopping":
        # Only the older doc lists Stopping for this field (unconfirmed, §3.3).
        return "Stopping"
    if status in ("Success", "Failed"):
        # A non-zero exit still counts as Finished: the suggested mapping (unconfirmed, §3.3 / §9.8).
        return "Finished"
    if status in STOPPED_CLASS:
        return "Stopped"
    # Invalid/Aborted/Error/Timeout (suggested mapping, unconfirmed, §3.3; a timeout ending Failed is documented).
    return "Failed"


def record_status(status: str) -> str:
    """`InvocationResult.InvokeRecordStatus` (DescribeInvocationResults): same mapping as the per-instance
    legacy field; the PartialFailed value of its enum never applies to a single record (unconfirmed, §3.3)."""
    return legacy_instance_status(status)


def legacy_invoke_status(instance_statuses: Iterable[str], repeat_mode: str) -> str:
    """`Invocation.InvokeStatus` (overall legacy status, also DescribeInvocations' `InvokeStatus` filter, §3.3).

    Derived from the per-instance legacy values (`legacy_instance_status`), as the documented sample has it: a
    run whose only instance exited non-zero is `InvocationStatus` `Failed` but `InvokeStatus` `Finished` (its
    instance is `Finished`: the command ran to its end). The legacy `Failed` / `PartialFailed` are about runs
    that could not complete (Invalid, Aborted, Error, Timeout)."""
    seen = _collect(instance_statuses, INSTANCE_STATUSES)
    if not seen:
        # Mirrors overall_status() == 'Pending' for an empty set (unconfirmed, §3.3).
        return "Running"
    if repeat_mode in REPEATING_MODES and seen & {"Scheduled", "Running"}:
        # "periodic tasks stay Running until stopped" (§3.3).
        return "Running"
    legacy = {legacy_instance_status(s) for s in seen}
    if "Running" in legacy:
        return "Running"
    if "Stopping" in legacy:
        return "Stopping"
    # All ended from here: Finished, Failed or Stopped per instance (rules below: the suggested reading of
    # §3.3, unconfirmed, §9.8, but for the documented non-zero exit sample).
    if legacy == {"Stopped"}:
        return "Stopped"
    if legacy <= {"Failed", "Stopped"}:
        # "one-time: all failed" (stopped instances alongside do not make it partial)
        return "Failed"
    if "Failed" in legacy:
        return "PartialFailed"
    # Finished, possibly with some stopped instances: "all done, or some stopped and the rest done" (§3.3).
    return "Finished"


def file_overall_status(instance_statuses: Iterable[str]) -> str:
    """Overall status of a SendFile task (DescribeSendFileResults `InvocationStatus`, §3.5)."""
    seen = _collect(instance_statuses, FILE_STATUSES)
    if not seen or "Pending" in seen:
        # Empty set: only possible mid-creation (unconfirmed, §3.5).
        return "Pending"
    if "Running" in seen:
        return "Running"
    if seen == {"Success"}:
        return "Success"
    if seen <= FAILED_CLASS:
        return "Failed"
    return "PartialFailed"
