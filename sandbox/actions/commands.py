"""Cloud Assistant command actions (reference §2.1-2.9): create, run, list, modify, delete and stop.

Handlers validate parameters, write rows for the agent host (see INTERNALS.md "Work hand-off") and read
them back in the documented response shapes. Everything is scoped to `ctx.region_id`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox import placeholders, schedule, status, store
from sandbox.actions import Context, action
from sandbox.errors import ApiError, invalid
from sandbox.paging import Page, page_fields, read_page
from sandbox.params import Params

COMMAND_TYPES = ("RunShellScript", "RunBatScript", "RunPowerShellScript")
WINDOWS_TYPES = ("RunBatScript", "RunPowerShellScript")
REPEAT_MODES = ("Once", "Period", "NextRebootOnly", "EveryReboot", "DryRun")
TERMINATION_MODES = ("Process", "ProcessTree")
DEFAULT_TERMINATION_MODE = "ProcessTree"  # schema default; the ref §2.4 sample shows ProcessTree

# Size of the content after Base64 (ref §2.1, §7). RunCommand: 24 KB (SDK 7.11.8).
# unconfirmed (ref §9.1): CreateCommand/InvokeCommand are 18 KB in the Dec-2025 pages but 24 KB in the SDK 7.11.8
# docstrings; chose 24 KB for all three.
CONTENT_LIMIT = 24 * 1024
MAX_INSTANCES = 100  # Run/Invoke, ref §7
MAX_STOP_INSTANCES = 50  # StopInvocation, ref §2.6
MAX_TAGS = 20
RUN_RESOURCE_TAGS = 20  # SDK RunCommand: 0-20
INVOKE_RESOURCE_TAGS = 10  # InvokeCommand page: N 1-10 (ref §9.3)
NAME_LIMIT = 128
DESCRIPTION_LIMIT = 512
WORKING_DIR_LIMIT = 200
USERNAME_LIMIT = 255
WINDOWS_PASSWORD_NAME_LIMIT = 255
LAUNCHER_LIMIT = 1024
TIMEOUT_DEFAULT = 60
# Lower bound: "at least 10 seconds" is stated for InvokeCommand (ref §2.3).
# unconfirmed (ref §2.1/§2.2): chose 10 s for RunCommand, CreateCommand and ModifyCommand too, below ->
# InvalidTimeout.ExceedLimit 403 (the code the ref lists for out-of-range timeouts).
TIMEOUT_MIN = 10
# unconfirmed (ref §9.4): the maximum exists but is undocumented; chose 86400 s -> InvalidTimeout.ExceedLimit 403.
TIMEOUT_MAX = 86400

RUNNABLE_STATUSES = ("Pending", "Scheduled", "Running")

_CONTAINER_ID = re.compile(r"^(?:(?:docker|containerd|cri-o)://)?[0-9a-fA-F]{64}$")
# unconfirmed (ref §2.1 "same rules as ContainerId"): a name cannot be 64 hex; chose Docker's name rule
# [A-Za-z0-9][A-Za-z0-9_.-]* (<= 255) with the same optional runtime prefix.
_CONTAINER_NAME = re.compile(r"^(?:(?:docker|containerd|cri-o)://)?[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")

ERROR_INFO = {
    "CommandNotApplicable": "the command is not applicable",
    "ClientNotRunning": "the aliyun service is not running on the instance",
}
# unconfirmed (ref §2.1 ContainerId/ContainerName): the sandbox cannot run containers; chose a per-instance
# Invalid + CommandNotApplicable row with this ErrorInfo instead of failing the whole call.
CONTAINER_ERROR_INFO = ("the command is not applicable: the sandbox cannot run commands inside containers "
                        "(ContainerId/ContainerName)")


# --------------------------------------------------------------------------------------------------------------
# Parameter helpers
# --------------------------------------------------------------------------------------------------------------

def _default_username(command_type: str) -> str:
    """What the agent runs as when Username is not given (reference §2.1): root on Linux, System on Windows."""
    return "root" if command_type == "RunShellScript" else "System"


def _default_working_dir(command_type: str) -> str:
    """Default WorkingDir (reference §2.1) as DescribeInvocations reports it."""
    return "/root" if command_type == "RunShellScript" else "C:\\Windows\\system32"


def _text(p: Params, name: str, limit: int | None = None, code: str | None = None, default: str = "") -> str:
    value = p.str(name, max_len=limit, too_long_code=code)
    return default if value is None else value


def _command_type(p: Params) -> str:
    value = p.req("Type")
    if value not in COMMAND_TYPES:
        raise ApiError("InvalidCmdType.NotFound", f"The specified command type \"{value}\" does not exist.", 404)
    return value


def _input_encoding(p: Params, default: str) -> str:
    """ContentEncoding of CommandContent, case-insensitive; an invalid value is the default (ref §2.1, §2.2)."""
    value = (p.str("ContentEncoding") or "").lower()
    if value == "base64":
        return "Base64"
    if value == "plaintext":
        return "PlainText"
    return default


def _output_encoding(p: Params) -> str:
    """ContentEncoding of returned CommandContent/Output in Describe* (ref §2.4, §2.5, §2.7)."""
    value = (p.str("ContentEncoding") or "").lower()
    # unconfirmed (ref §2.4): an invalid value is not documented for Describe*; chose the default Base64.
    return "PlainText" if value == "plaintext" else "Base64"


def _decode_content(raw: str, encoding: str) -> str:
    if encoding == "PlainText":
        return raw
    compact = re.sub(r"\s+", "", raw)
    compact += "=" * (-len(compact) % 4)
    try:
        # unconfirmed (ref §2.2): bytes that are not UTF-8 after decoding are reported as a decode error too.
        return base64.b64decode(compact, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ApiError("CmdContent.DecodeError",
                       "The specified CommandContent is not valid Base64-encoded UTF-8 text.", 400) from None


def _check_size(content: str, parameters: dict[str, Any] | None = None) -> None:
    """Content (plus Parameters) after Base64 must fit CONTENT_LIMIT (ref §2.1, §2.3)."""
    payload = content.encode("utf-8")
    if parameters:
        # unconfirmed (ref §2.1 Parameters): "content+params after Base64"; chose the Base64 length of the UTF-8
        # content followed by the Parameters JSON text.
        payload += json.dumps(parameters, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    encoded = 4 * ((len(payload) + 2) // 3)
    if encoded > CONTENT_LIMIT:
        raise ApiError("CmdContent.ExceedLimit",
                       f"The Base64-encoded command content ({encoded} bytes) exceeds the limit of "
                       f"{CONTENT_LIMIT} bytes.", 403)


def _timeout(p: Params, default: int) -> int:
    value = p.int("Timeout", default=default, minimum=TIMEOUT_MIN, maximum=TIMEOUT_MAX,
                  code="InvalidTimeout.ExceedLimit")
    assert value is not None
    return value


def _parameters(p: Params) -> dict[str, Any]:
    value = p.json("Parameters", default=None)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError("InvalidParameter.Parameters", "The specified Parameters must be a JSON object.", 400)
    return value


def _termination_mode(p: Params) -> str:
    value = p.str("TerminationMode") or DEFAULT_TERMINATION_MODE
    if value not in TERMINATION_MODES:
        raise ApiError("InvalidTerminationMode.NotFound",
                       f"The specified TerminationMode \"{value}\" does not exist.", 404)
    return value


def _containers(p: Params) -> tuple[str, str]:
    container_id = p.str("ContainerId") or ""
    container_name = p.str("ContainerName") or ""
    if container_id and not _CONTAINER_ID.match(container_id):
        raise ApiError("InvalidContainerId.Malformed", "The specified ContainerId is malformed.", 400)
    if container_name and not _CONTAINER_NAME.match(container_name):
        raise ApiError("InvalidContainerName.Malformed", "The specified ContainerName is malformed.", 400)
    return container_id, container_name


def _read_tags(p: Params, param: str, label: str, limit: int) -> list[tuple[str, str]]:
    """`Tag.N.Key/Value` (label 'Tag') or `ResourceTag.N.Key/Value` (label 'ResourceTag') with the ref §2.1 rules."""
    items = p.obj_list(param)
    if len(items) > limit:
        raise ApiError(f"NumberExceed.{label}s", f"The number of {param} entries exceeds the limit of {limit}.", 400)
    seen: set[str] = set()
    tags: list[tuple[str, str]] = []
    for item in items:
        key = item.get("Key", "")
        value = item.get("Value", "")
        if key == "":
            raise ApiError(f"MissingParameter.{label}Key", f"The parameter \"{param}.N.Key\" is required.", 400)
        lowered = key.lower()
        if (len(key) > 64 or lowered.startswith(("aliyun", "acs:"))
                or "http://" in lowered or "https://" in lowered):
            raise ApiError(f"Invalid{label}Key.Malformed", f"The specified {param} key \"{key}\" is malformed.", 400)
        if len(value) > 128 or "http://" in value.lower() or "https://" in value.lower():
            raise ApiError(f"Invalid{label}Value.Malformed",
                           f"The specified {param} value \"{value}\" is malformed.", 400)
        if key in seen:
            raise ApiError(f"Duplicate.{label}Key", f"The {param} key \"{key}\" is duplicated.", 400)
        seen.add(key)
        tags.append((key, value))
    return tags


def _tag_filter_sql(table: str, id_expr: tuple[str, str],
                    tags: Sequence[tuple[str, str]]) -> tuple[list[str], list[Any]]:
    """EXISTS clauses for tag filters: every pair must be present.

    unconfirmed (ref §2.1 ResourceTag / §2.4 Tag): an empty Value matches any value of that key.
    """
    clauses: list[str] = []
    args: list[Any] = []
    for key, value in tags:
        clause = f"EXISTS (SELECT 1 FROM {table} tg WHERE tg.{id_expr[0]} = {id_expr[1]} AND tg.tag_key = ?"  # noqa: S608
        args.append(key)
        if value != "":
            clause += " AND tg.tag_value = ?"
            args.append(value)
        clauses.append(clause + ")")
    return clauses, args


def _where(conditions: Iterable[tuple[str, Any]], tag_table: str, tag_owner: tuple[str, str],
           tags: Sequence[tuple[str, str]]) -> tuple[str, list[Any]]:
    """The WHERE condition of a Describe* filter and its arguments: for each (condition, value) whose value is not
    None, the condition (a column compared with `= ?`, or a clause with its own `?`), then the tag filters."""
    where: list[str] = []
    args: list[Any] = []
    for condition, value in conditions:
        if value is not None:
            where.append(condition if "?" in condition else f"{condition} = ?")
            args.append(value)
    clauses, tag_args = _tag_filter_sql(tag_table, tag_owner, tags)
    return " AND ".join(where + clauses), args + tag_args


def _repeat(p: Params, timeout: int) -> tuple[str, str, schedule.Schedule | None]:
    mode = p.str("RepeatMode") or "Once"
    if mode not in REPEAT_MODES:
        raise ApiError("InvalidRepeatMode.NotFound", f"The specified RepeatMode \"{mode}\" does not exist.", 404)
    frequency = p.str("Frequency") or ""
    # Frequency forces Period whatever RepeatMode says (ref §2.1).
    # unconfirmed (ref §2.1): chose to keep DryRun a precheck even with Frequency (the Frequency is still checked).
    if frequency and mode != "DryRun":
        mode = "Period"
    if mode == "Period" and not frequency:
        raise ApiError("MissingParam.Frequency", "The parameter Frequency is required when RepeatMode is Period.", 400)
    sched = schedule.parse_frequency(frequency, timeout) if frequency else None
    return mode, frequency, sched


# --------------------------------------------------------------------------------------------------------------
# Targets and invocation rows
# --------------------------------------------------------------------------------------------------------------

def _resolve_targets(ctx: Context, p: Params, resource_tag_limit: int) -> list[sqlite3.Row]:
    ids = [i for i in p.list("InstanceId") if i != ""]
    has_resource_tags = bool(p.obj_list("ResourceTag"))
    if ids and has_resource_tags:
        raise ApiError("InvalidResourceTag.ConflictWithInstanceIds",
                       "InstanceId and ResourceTag cannot be specified at the same time.", 400)
    rows: list[sqlite3.Row]
    if has_resource_tags:
        tags = _read_tags(p, "ResourceTag", "ResourceTag", resource_tag_limit)
        where, args = _where([("i.region_id", ctx.region_id)], "instance_tags", ("instance_id", "i.instance_id"), tags)
        rows = ctx.db.execute(f"SELECT * FROM instances i WHERE {where} ORDER BY i.seq", args).fetchall()  # noqa: S608
        if not rows:
            raise ApiError("InvalidResourceTag.InstanceNotFound",
                           "No instance in this region has all the specified ResourceTag tags.", 400)
        if len(rows) > MAX_INSTANCES:
            raise ApiError("InstanceIds.ExceedLimit",
                           f"The ResourceTag tags match {len(rows)} instances, more than the limit of "
                           f"{MAX_INSTANCES}.", 403)
    else:
        if not ids:
            raise ApiError("MissingParam.InstanceId", "The parameter InstanceId is required.", 400)
        if len(ids) > MAX_INSTANCES:
            raise ApiError("InstanceIds.ExceedLimit",
                           f"The number of InstanceId entries exceeds the limit of {MAX_INSTANCES}.", 403)
        rows = []
        for instance_id in dict.fromkeys(ids):  # duplicates collapse to one, first position kept
            row = ctx.db.execute("SELECT * FROM instances WHERE instance_id = ? AND region_id = ?",
                                 (instance_id, ctx.region_id)).fetchone()
            if row is None:
                raise ApiError("InvalidInstance.NotFound",
                               f"The specified instance \"{instance_id}\" does not exist.", 404)
            rows.append(row)
    # Ref §2.1: "If any listed instance fails the preconditions the whole call fails" (Running, agent installed).
    # unconfirmed (ref §2.1 ResourceTag): chose to apply the same rule to instances selected by ResourceTag.
    for row in rows:
        if row["status"] != "Running" or not row["agent_installed"]:
            reason = "is not Running" if row["status"] != "Running" else "has no Cloud Assistant agent installed"
            raise ApiError("InvalidInstance.NotMatch",
                           f"The specified instance \"{row['instance_id']}\" {reason}.", 400)
    return rows


@dataclass
class _Invocation:
    command_id: str
    command_name: str
    command_type: str
    command_description: str
    command_content: str
    parameters: dict[str, Any]
    repeat_mode: str
    frequency: str
    schedule: schedule.Schedule | None
    timeout: int
    working_dir: str
    username: str
    container_id: str
    container_name: str
    launcher: str
    termination_mode: str
    resource_group_id: str
    tags: list[tuple[str, str]]


def _first_run(inv: _Invocation, created: float) -> float | None:
    if inv.schedule is None:
        return None
    first = inv.schedule.next_after(created)
    if first is None:
        # unconfirmed (ref §2.1.1): a schedule with no run after now (e.g. an at() in the past) is refused.
        raise ApiError("InvalidParam.Frequency", "The specified Frequency has no execution time in the future.", 400)
    return first


def _initial_row(instance: sqlite3.Row, inv: _Invocation, created: float,
                 first_run: float | None) -> tuple[str, float | None, str, str]:
    """(status, next_run_at, error_code, error_info) decided at creation (INTERNALS.md hand-off)."""
    windows = str(instance["os_type"]).lower() == "windows"
    if (inv.command_type == "RunShellScript") == windows:
        return "Invalid", None, "CommandNotApplicable", ERROR_INFO["CommandNotApplicable"]
    if inv.container_id or inv.container_name:
        return "Invalid", None, "CommandNotApplicable", CONTAINER_ERROR_INFO
    if not instance["agent_running"]:
        return "Aborted", None, "ClientNotRunning", ERROR_INFO["ClientNotRunning"]
    if inv.repeat_mode == "Once":
        return "Pending", created, "", ""
    if inv.repeat_mode == "Period":
        return "Scheduled", first_run, "", ""
    return "Scheduled", None, "", ""  # NextRebootOnly / EveryReboot: the agent host sets it on boot


def _insert_invocation(ctx: Context, inv: _Invocation, targets: Sequence[sqlite3.Row], created: float,
                       first_run: float | None) -> str:
    """Call inside store.transaction."""
    db = ctx.db
    invoke_id = store.new_id("t", ctx.region_id)
    seq = store.next_seq(db, "invocations")
    db.execute(
        "INSERT INTO invocations(invoke_id, region_id, command_id, command_name, command_type, command_description,"
        " command_content, parameters, repeat_mode, frequency, timeout, working_dir, username, container_id,"
        " container_name, launcher, termination_mode, resource_group_id, created_at, seq)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (invoke_id, ctx.region_id, inv.command_id, inv.command_name, inv.command_type, inv.command_description,
         inv.command_content, json.dumps(inv.parameters, ensure_ascii=False), inv.repeat_mode, inv.frequency,
         inv.timeout, inv.working_dir, inv.username, inv.container_id, inv.container_name, inv.launcher,
         inv.termination_mode, inv.resource_group_id, created, seq),
    )
    for instance in targets:
        row_status, next_run_at, error_code, error_info = _initial_row(instance, inv, created, first_run)
        # unconfirmed (ref §2.4 FinishTime): rows decided at creation (Invalid/Aborted) are terminal; chose
        # FinishTime = creation time for them.
        finish = created if row_status in store.TERMINAL_STATUSES else None
        db.execute(
            "INSERT INTO invocation_instances(invoke_id, instance_id, status, run_no, next_run_at, error_code,"
            " error_info, creation_time, finish_time, update_time) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
            (invoke_id, instance["instance_id"], row_status, next_run_at, error_code, error_info, created, finish,
             created),
        )
        db.execute("UPDATE instances SET last_invoked = ? WHERE instance_id = ?", (created, instance["instance_id"]))
    db.executemany("INSERT INTO invocation_tags(invoke_id, tag_key, tag_value) VALUES (?, ?, ?)",
                   [(invoke_id, k, v) for k, v in inv.tags])
    db.execute("UPDATE commands SET invoke_times = invoke_times + 1 WHERE command_id = ?", (inv.command_id,))
    return invoke_id


def _common_run_fields(p: Params, command_type: str) -> dict[str, Any]:
    """Parameters RunCommand and InvokeCommand share (validated in the same order). `command_type`: RunCommand's
    Type, InvokeCommand's saved command's type."""
    username = _text(p, "Username", USERNAME_LIMIT, "Username.ExceedLimit")
    password_name = p.str("WindowsPasswordName", max_len=WINDOWS_PASSWORD_NAME_LIMIT,
                          too_long_code="WindowsPasswordName.ExceedLimit")
    # ref §2.1: a Windows script run as a user other than System needs WindowsPasswordName (the OOS parameter that
    # holds the password); an empty Username is System; the user name compares case-insensitively (Windows).
    if command_type in WINDOWS_TYPES and username.lower() not in ("", "system") and password_name is None:
        raise ApiError("WindowsPasswordName.Missed",
                       f"WindowsPasswordName is required to run a {command_type} command as \"{username}\" "
                       f"(any user other than System).", 403)
    # unconfirmed (ref §2.1 WindowsPasswordName, OssOutputDelivery): accepted and not stored (no OOS, no OSS
    # here); OssOutputDelivery is answered as "".
    container_id, container_name = _containers(p)
    return {
        "username": username,
        "container_id": container_id,
        "container_name": container_name,
        "termination_mode": _termination_mode(p),
        "resource_group_id": p.str("ResourceGroupId") or "",
        "parameters": _parameters(p),
    }


def _get_command(ctx: Context, command_id: str) -> sqlite3.Row:
    """A listed command of this region; KeepCommand=false commands (visible = 0) do not exist for the API."""
    row = ctx.db.execute("SELECT * FROM commands WHERE command_id = ? AND region_id = ? AND visible = 1",
                         (command_id, ctx.region_id)).fetchone()
    if row is None:
        raise ApiError("InvalidCmdId.NotFound", f"The specified command \"{command_id}\" does not exist.", 404)
    return row


# --------------------------------------------------------------------------------------------------------------
# RunCommand / CreateCommand / InvokeCommand
# --------------------------------------------------------------------------------------------------------------

@action("RunCommand", mutating=True, client_token=True)
def run_command(ctx: Context, p: Params) -> dict[str, Any]:
    command_type = _command_type(p)
    content = _decode_content(p.req("CommandContent"), _input_encoding(p, "PlainText"))
    name = _text(p, "Name", NAME_LIMIT, "CmdName.ExceedLimit")
    description = _text(p, "Description", DESCRIPTION_LIMIT, "CmdDesc.ExceedLimit")
    working_dir = _text(p, "WorkingDir", WORKING_DIR_LIMIT)  # InvalidParameter.WorkingDir 400
    launcher = _text(p, "Launcher", LAUNCHER_LIMIT, "InvalidLauncher.LengthLimitExceeded")
    timeout = _timeout(p, TIMEOUT_DEFAULT)
    enable_parameter = p.bool("EnableParameter")
    keep_command = p.bool("KeepCommand")
    common = _common_run_fields(p, command_type)
    parameters: dict[str, Any] = common.pop("parameters")
    if enable_parameter:
        placeholders.validate_content_placeholders(content)
    placeholders.validate_parameters(content, enable_parameter, parameters)
    _check_size(content, parameters)
    mode, frequency, sched = _repeat(p, timeout)
    tags = _read_tags(p, "Tag", "Tag", MAX_TAGS)
    targets = _resolve_targets(ctx, p, RUN_RESOURCE_TAGS)
    created = store.now()
    inv = _Invocation(command_id="", command_name=name, command_type=command_type, command_description=description,
                      command_content=content, parameters=parameters, repeat_mode=mode, frequency=frequency,
                      schedule=sched, timeout=timeout, working_dir=working_dir, launcher=launcher, tags=tags, **common)
    first_run = _first_run(inv, created)
    if mode == "DryRun":
        # unconfirmed (ref §9.12): the DryRun success shape is undocumented; chose the normal shape with empty IDs
        # once every check has passed (nothing is created, nothing runs).
        return {"CommandId": "", "InvokeId": ""}
    with store.transaction(ctx.db) as db:
        inv.command_id = store.new_id("c", ctx.region_id)
        db.execute(
            "INSERT INTO commands(command_id, region_id, name, description, type, content, working_dir, timeout,"
            " enable_parameter, launcher, resource_group_id, invoke_times, visible, created_at, seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            (inv.command_id, ctx.region_id, name, description, command_type, content, working_dir, timeout,
             int(enable_parameter), launcher, inv.resource_group_id, int(keep_command), created,
             store.next_seq(db, "commands")),
        )
        # unconfirmed (ref §2.1 Tag): chose to tag the kept/hidden command with the invocation's tags as well.
        db.executemany("INSERT INTO command_tags(command_id, tag_key, tag_value) VALUES (?, ?, ?)",
                       [(inv.command_id, k, v) for k, v in tags])
        invoke_id = _insert_invocation(ctx, inv, targets, created, first_run)
    ctx.poke()
    return {"CommandId": inv.command_id, "InvokeId": invoke_id}


@action("CreateCommand", mutating=True, client_token=True)
def create_command(ctx: Context, p: Params) -> dict[str, Any]:
    name = p.req("Name", max_len=NAME_LIMIT, too_long_code="CmdName.ExceedLimit")
    command_type = _command_type(p)
    content = _decode_content(p.req("CommandContent"), _input_encoding(p, "Base64"))
    description = _text(p, "Description", DESCRIPTION_LIMIT, "CmdDesc.ExceedLimit")
    working_dir = _text(p, "WorkingDir", WORKING_DIR_LIMIT)
    launcher = _text(p, "Launcher", LAUNCHER_LIMIT, "InvalidLauncher.LengthLimitExceeded")
    timeout = _timeout(p, TIMEOUT_DEFAULT)
    enable_parameter = p.bool("EnableParameter")
    if enable_parameter:
        placeholders.validate_content_placeholders(content)
    _check_size(content)
    resource_group_id = p.str("ResourceGroupId") or ""
    tags = _read_tags(p, "Tag", "Tag", MAX_TAGS)
    command_id = store.new_id("c", ctx.region_id)
    with store.transaction(ctx.db) as db:
        db.execute(
            "INSERT INTO commands(command_id, region_id, name, description, type, content, working_dir, timeout,"
            " enable_parameter, launcher, resource_group_id, invoke_times, visible, created_at, seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1, ?, ?)",
            (command_id, ctx.region_id, name, description, command_type, content, working_dir, timeout,
             int(enable_parameter), launcher, resource_group_id, store.now(), store.next_seq(db, "commands")),
        )
        db.executemany("INSERT INTO command_tags(command_id, tag_key, tag_value) VALUES (?, ?, ?)",
                       [(command_id, k, v) for k, v in tags])
    return {"CommandId": command_id}


@action("InvokeCommand", mutating=True, client_token=True)
def invoke_command(ctx: Context, p: Params) -> dict[str, Any]:
    # unconfirmed (ref §2.3): public commands referenced by name do not exist here -> InvalidCmdId.NotFound.
    command = _get_command(ctx, p.req("CommandId"))
    working_dir = _text(p, "WorkingDir", WORKING_DIR_LIMIT) or command["working_dir"]
    launcher = _text(p, "Launcher", LAUNCHER_LIMIT, "InvalidLauncher.LengthLimitExceeded") or command["launcher"]
    timeout = _timeout(p, int(command["timeout"]))
    common = _common_run_fields(p, str(command["type"]))
    parameters: dict[str, Any] = common.pop("parameters")
    content = str(command["content"])
    placeholders.validate_parameters(content, bool(command["enable_parameter"]), parameters)
    _check_size(content, parameters)
    mode, frequency, sched = _repeat(p, timeout)
    tags = _read_tags(p, "Tag", "Tag", MAX_TAGS)
    targets = _resolve_targets(ctx, p, INVOKE_RESOURCE_TAGS)
    created = store.now()
    inv = _Invocation(command_id=command["command_id"], command_name=command["name"],
                      command_type=command["type"], command_description=command["description"],
                      command_content=content, parameters=parameters, repeat_mode=mode, frequency=frequency,
                      schedule=sched, timeout=timeout, working_dir=working_dir, launcher=launcher, tags=tags, **common)
    first_run = _first_run(inv, created)
    if mode == "DryRun":
        # unconfirmed (ref §9.12): see RunCommand; chose {"InvokeId": ""} and nothing created.
        return {"InvokeId": ""}
    with store.transaction(ctx.db):
        invoke_id = _insert_invocation(ctx, inv, targets, created, first_run)
    ctx.poke()
    return {"InvokeId": invoke_id}


# --------------------------------------------------------------------------------------------------------------
# DescribeCommands / ModifyCommand / DeleteCommand
# --------------------------------------------------------------------------------------------------------------

def _wildcard(pattern: str) -> re.Pattern[str]:
    """`*` matches any run of characters; without `*` the match is exact (ref §2.7).

    unconfirmed (ref §2.7): chose case-sensitive matching for Name/Description.
    """
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$", re.S)


def _encode_text(text: str, encoding: str) -> str:
    return text if encoding == "PlainText" else base64.b64encode(text.encode("utf-8")).decode("ascii")


def _encode_output(data: bytes | None, encoding: str) -> str:
    raw = bytes(data or b"")
    if encoding == "PlainText":
        return raw.decode("utf-8", errors="replace")
    return base64.b64encode(raw).decode("ascii")


def _tags_body(tags: list[dict[str, str]]) -> dict[str, Any]:
    return {"Tag": tags}


def _describe_common(p: Params) -> tuple[str, str | None, list[tuple[str, str]], Page]:
    """What every Cloud Assistant Describe* reads alike, in this order: ContentEncoding, ResourceGroupId, Tag.N,
    paging (ref §2.4, §2.5, §2.7: MaxResults/PageSize up to 50, default 10)."""
    return (_output_encoding(p), p.str("ResourceGroupId"), _read_tags(p, "Tag", "Tag", MAX_TAGS),
            read_page(p, max_size=50, default_size=10))


def _run_settings(inv: sqlite3.Row) -> dict[str, Any]:
    """How the invocation runs, as DescribeInvocations and DescribeInvocationResults both report it."""
    return {
        "Username": inv["username"] or _default_username(inv["command_type"]),
        "ContainerId": inv["container_id"],
        "ContainerName": inv["container_name"],
        "Launcher": inv["launcher"],
        "TerminationMode": inv["termination_mode"],
        "OssOutputDelivery": "",
    }


# Per-instance OSS delivery fields: the sandbox delivers nothing to OSS.
_NO_OSS_OUTPUT = {"OssOutputStatus": "", "OssOutputUri": "", "OssOutputErrorCode": "", "OssOutputErrorInfo": ""}


@action("DescribeCommands")
def describe_commands(ctx: Context, p: Params) -> dict[str, Any]:
    command_id = p.str("CommandId")
    command_type = p.str("Type")
    if command_type is not None and command_type not in COMMAND_TYPES:
        raise ApiError("InvalidCommandType.NotFound", f"The specified Type \"{command_type}\" does not exist.", 404)
    name = p.str("Name", max_len=NAME_LIMIT, too_long_code="InvalidName.LengthLimitExceeded")
    description = p.str("Description", max_len=DESCRIPTION_LIMIT,
                        too_long_code="InvalidDescription.LengthLimitExceeded")
    provider = p.str("Provider")
    p.bool("Latest")  # public commands only
    encoding, resource_group_id, tags, page = _describe_common(p)
    if provider:
        # unconfirmed (ref §2.7 Provider): the sandbox has no public (AlibabaCloud) commands; any Provider -> none.
        return {**page_fields(page, 0), "Commands": {"Command": []}}

    where_sql, args = _where(
        [("c.region_id", ctx.region_id), ("c.visible", 1), ("c.command_id", command_id), ("c.type", command_type),
         ("c.resource_group_id", resource_group_id)],
        "command_tags", ("command_id", "c.command_id"), tags)
    rows = ctx.db.execute(f"SELECT * FROM commands c WHERE {where_sql} ORDER BY c.seq DESC", args).fetchall()  # noqa: S608
    if name is not None:
        name_re = _wildcard(name)
        rows = [r for r in rows if name_re.match(r["name"])]
    if description is not None:
        desc_re = _wildcard(description)
        rows = [r for r in rows if desc_re.match(r["description"])]
    selected = rows[page.offset:page.offset + page.size]
    commands = []
    for r in selected:
        content = str(r["content"])
        names = placeholders.find_placeholders(content) if r["enable_parameter"] else []
        commands.append({
            "CommandId": r["command_id"],
            "Name": r["name"],
            "Description": r["description"],
            "Type": r["type"],
            "CommandContent": _encode_text(content, encoding),
            # Stored as given: '' when the caller set no WorkingDir (the agent applies the default at run time).
            "WorkingDir": r["working_dir"],
            "Timeout": r["timeout"],
            "EnableParameter": bool(r["enable_parameter"]),
            "InvokeTimes": r["invoke_times"],
            "CreationTime": store.iso_minute(r["created_at"]),
            "ParameterNames": {"ParameterName": names},
            "ParameterDefinitions": {"ParameterDefinition": []},
            # Provider/Category/Version/Latest are only returned for public commands (ref §2.7): omitted.
            "Launcher": r["launcher"],
            "ResourceGroupId": r["resource_group_id"],
            "Tags": _tags_body(store.tags_of(ctx.db, "command_tags", "command_id", r["command_id"])),
        })
    return {**page_fields(page, len(rows)), "Commands": {"Command": commands}}


@action("ModifyCommand", mutating=True)
def modify_command(ctx: Context, p: Params) -> dict[str, Any]:
    command = _get_command(ctx, p.req("CommandId"))
    updates: dict[str, Any] = {}
    name = p.str("Name", max_len=NAME_LIMIT, too_long_code="CmdName.ExceedLimit")
    if name is not None:
        updates["name"] = name
    description = p.str("Description", max_len=DESCRIPTION_LIMIT, too_long_code="CmdDesc.ExceedLimit")
    if description is not None:
        updates["description"] = description
    working_dir = p.str("WorkingDir", max_len=WORKING_DIR_LIMIT)
    if working_dir is not None:
        updates["working_dir"] = working_dir
    launcher = p.str("Launcher", max_len=LAUNCHER_LIMIT, too_long_code="InvalidLauncher.LengthLimitExceeded")
    if launcher is not None:
        updates["launcher"] = launcher
    timeout = p.int("Timeout", minimum=TIMEOUT_MIN, maximum=TIMEOUT_MAX, code="InvalidTimeout.ExceedLimit")
    if timeout is not None:
        updates["timeout"] = timeout
    # CommandContent is deprecated and ignored (ref §2.8); it is neither validated nor stored.
    if updates:
        assignments = ", ".join(f"{column} = ?" for column in updates)
        with store.transaction(ctx.db) as db:
            db.execute(f"UPDATE commands SET {assignments} WHERE command_id = ?",  # noqa: S608
                       [*updates.values(), command["command_id"]])
    return {}


@action("DeleteCommand", mutating=True)
def delete_command(ctx: Context, p: Params) -> dict[str, Any]:
    # unconfirmed (ref §2.9): InvalidCmdId.NotFound 404 for an unknown ID.
    command = _get_command(ctx, p.req("CommandId"))
    with store.transaction(ctx.db) as db:
        busy = db.execute(
            "SELECT 1 FROM invocation_instances r JOIN invocations i ON i.invoke_id = r.invoke_id"
            " WHERE i.command_id = ? AND r.status IN ('Pending', 'Scheduled', 'Running', 'Stopping') LIMIT 1",
            (command["command_id"],),
        ).fetchone()
        if busy is not None:
            # unconfirmed (ref §2.9, §9.12): chose to refuse deleting a command that still has pending, scheduled,
            # running or stopping executions, with Operation.Forbidden 403.
            raise ApiError("Operation.Forbidden",
                           "The command has executions that are pending, scheduled, running or stopping; "
                           "stop them with StopInvocation before deleting the command.", 403)
        db.execute("DELETE FROM commands WHERE command_id = ?", (command["command_id"],))
        db.execute("DELETE FROM command_tags WHERE command_id = ?", (command["command_id"],))
    return {}


# --------------------------------------------------------------------------------------------------------------
# DescribeInvocations / DescribeInvocationResults
# --------------------------------------------------------------------------------------------------------------

def _row_timed(repeat_mode: str, row_status: str) -> bool:
    """Will this execution run again? (ref §2.4 Timed)."""
    if row_status == "Scheduled":
        return repeat_mode != "Once"
    if row_status in ("Pending", "Running"):
        return repeat_mode in ("Period", "EveryReboot")
    return False


def _invocation_timed(repeat_mode: str, row_statuses: Iterable[str]) -> bool:
    """The invocation's Timed: some instance will run it again. The Timed filter and the answer's field agree."""
    return any(_row_timed(repeat_mode, s) for s in row_statuses)


def _statuses_by_invocation(ctx: Context, subquery: str, args: Sequence[Any],
                            instance_id: str | None) -> dict[str, list[str]]:
    sql = f"SELECT invoke_id, status FROM invocation_instances WHERE invoke_id IN ({subquery})"  # noqa: S608
    params = list(args)
    if instance_id is not None:
        sql += " AND instance_id = ?"
        params.append(instance_id)
    found: dict[str, list[str]] = {}
    for r in ctx.db.execute(sql + " ORDER BY rowid", params):
        found.setdefault(r["invoke_id"], []).append(r["status"])
    return found


def _time(ts: float | None) -> str:
    return store.iso(ts)


@action("DescribeInvocations")
def describe_invocations(ctx: Context, p: Params) -> dict[str, Any]:
    invoke_id = p.str("InvokeId")
    command_id = p.str("CommandId")
    command_name = p.str("CommandName")
    command_type = p.str("CommandType")
    instance_id = p.str("InstanceId")
    invoke_status = p.str("InvokeStatus")
    repeat_mode = p.str("RepeatMode")
    timed = p.bool("Timed")  # documented default false (ref §2.4): without it only non-repeating work is listed
    include_output = p.bool("IncludeOutput")
    encoding, resource_group_id, tags, page = _describe_common(p)
    if include_output and invoke_id is None and instance_id is None:
        # unconfirmed (ref §2.4 IncludeOutput): no code documented; chose InvalidParameter.IncludeOutput 400.
        raise invalid("IncludeOutput", "IncludeOutput=true requires InvokeId or InstanceId.")

    # CommandName and RepeatMode are ignored when InstanceId is given (ref §2.4).
    by_instance = instance_id is not None
    where_sql, args = _where(
        [("i.region_id", ctx.region_id), ("i.invoke_id", invoke_id), ("i.command_id", command_id),
         ("i.command_type", command_type), ("i.resource_group_id", resource_group_id),
         ("EXISTS (SELECT 1 FROM invocation_instances x WHERE x.invoke_id = i.invoke_id AND x.instance_id = ?)",
          instance_id),
         ("i.command_name", None if by_instance else command_name),
         ("i.repeat_mode", None if by_instance else repeat_mode)],
        "invocation_tags", ("invoke_id", "i.invoke_id"), tags)
    candidates = ctx.db.execute(
        f"SELECT i.invoke_id, i.repeat_mode FROM invocations i WHERE {where_sql} ORDER BY i.seq DESC",  # noqa: S608
        args,
    ).fetchall()
    subquery = f"SELECT i.invoke_id FROM invocations i WHERE {where_sql}"  # noqa: S608
    statuses = _statuses_by_invocation(ctx, subquery, args, instance_id)
    kept = []
    for c in candidates:
        sts = statuses.get(c["invoke_id"], [])
        if invoke_status is not None and invoke_status not in (
                status.legacy_invoke_status(sts, c["repeat_mode"]), status.overall_status(sts)):
            # unconfirmed (ref §2.4 InvokeStatus): the filter lists legacy and current values; chose to match
            # either the legacy InvokeStatus or the current InvocationStatus.
            continue
        # Timed (ref §2.4): true = only executions that will run again, false (the default) = the others.
        # unconfirmed (ref §2.4): the reference exempts no filter, so an InvokeId lookup follows the same rule (a
        # scheduled execution needs Timed=true to be found).
        if timed != _invocation_timed(c["repeat_mode"], sts):
            continue
        kept.append(c)
    candidates = kept
    selected = [c["invoke_id"] for c in candidates[page.offset:page.offset + page.size]]
    invocations = [_invocation_body(ctx, iid, instance_id, include_output, encoding) for iid in selected]
    return {**page_fields(page, len(candidates)), "Invocations": {"Invocation": invocations}}


def _invocation_body(ctx: Context, invoke_id: str, instance_id: str | None, include_output: bool,
                     encoding: str) -> dict[str, Any]:
    inv = ctx.db.execute("SELECT * FROM invocations WHERE invoke_id = ?", (invoke_id,)).fetchone()
    sql = "SELECT * FROM invocation_instances WHERE invoke_id = ?"
    args: list[Any] = [invoke_id]
    if instance_id is not None:
        # unconfirmed (ref §2.4 InstanceId, §3.2): chose to show only that instance in InvokeInstances and derive
        # the overall status from it alone (so PartialFailed cannot occur, as ref §3.2 says).
        sql += " AND instance_id = ?"
        args.append(instance_id)
    rows = ctx.db.execute(sql + " ORDER BY rowid", args).fetchall()
    mode = inv["repeat_mode"]
    sts = [r["status"] for r in rows]
    instances = []
    for r in rows:
        item: dict[str, Any] = {
            "InstanceId": r["instance_id"],
            "InvocationStatus": r["status"],
            "InstanceInvokeStatus": status.legacy_instance_status(r["status"]),
        }
        if r["exit_code"] is not None:
            # unconfirmed (ref §2.4 ExitCode): chose to omit ExitCode while the row has none (no run finished).
            item["ExitCode"] = r["exit_code"]
        if include_output:
            item["Output"] = _encode_output(r["output"], encoding)
        item.update({
            "Dropped": r["dropped"],
            "ErrorCode": r["error_code"],
            "ErrorInfo": r["error_info"],
            "Repeats": r["run_no"],
            "Timed": _row_timed(mode, r["status"]),
            "CreationTime": _time(r["creation_time"]),
            "StartTime": _time(r["start_time"]),
            "FinishTime": _time(r["finish_time"]),
            "StopTime": _time(r["stop_time"]),
            "UpdateTime": _time(r["update_time"]),
            **_NO_OSS_OUTPUT,
        })
        instances.append(item)
    return {
        "InvokeId": inv["invoke_id"],
        "CommandId": inv["command_id"],
        "CommandName": inv["command_name"],
        "CommandType": inv["command_type"],
        "CommandDescription": inv["command_description"],
        "CommandContent": _encode_text(inv["command_content"], encoding),
        "Parameters": inv["parameters"],  # JSON text (ref §2.4, §9.9)
        "RepeatMode": mode,
        "Frequency": inv["frequency"],
        "Timed": _invocation_timed(mode, sts),
        "Timeout": inv["timeout"],
        "WorkingDir": inv["working_dir"] or _default_working_dir(inv["command_type"]),
        **_run_settings(inv),
        "CreationTime": _time(inv["created_at"]),
        "InvocationStatus": status.overall_status(sts),
        "InvokeStatus": status.legacy_invoke_status(sts, mode),
        "Tags": _tags_body(store.tags_of(ctx.db, "invocation_tags", "invoke_id", invoke_id)),
        "InvokeInstances": {"InvokeInstance": instances},
    }


@dataclass(frozen=True)
class _ResultKey:
    invoke_id: str
    instance_id: str
    run_no: int | None  # None: the current row; else a run_history row


@action("DescribeInvocationResults")
def describe_invocation_results(ctx: Context, p: Params) -> dict[str, Any]:
    invoke_id = p.str("InvokeId")
    instance_id = p.str("InstanceId")
    command_id = p.str("CommandId")
    record_status = p.str("InvokeRecordStatus")
    include_history = p.bool("IncludeHistory")
    encoding, resource_group_id, tags, page = _describe_common(p)

    where_sql, args = _where(
        [("i.region_id", ctx.region_id), ("r.invoke_id", invoke_id), ("r.instance_id", instance_id),
         ("i.command_id", command_id), ("i.resource_group_id", resource_group_id)],
        "invocation_tags", ("invoke_id", "i.invoke_id"), tags)
    sql = ("SELECT r.invoke_id, r.instance_id, r.status, i.repeat_mode FROM invocation_instances r"  # noqa: S608
           f" JOIN invocations i ON i.invoke_id = r.invoke_id WHERE {where_sql} ORDER BY i.seq DESC, r.rowid")
    rows = ctx.db.execute(sql, args).fetchall()
    # IncludeHistory needs InvokeId of a Period/EveryReboot execution (ref §2.5).
    # unconfirmed (ref §2.5): no error code is documented for other cases; chose to ignore IncludeHistory there.
    history: dict[str, list[tuple[int, str]]] = {}
    if include_history and invoke_id is not None and rows and rows[0]["repeat_mode"] in ("Period", "EveryReboot"):
        for h in ctx.db.execute("SELECT instance_id, run_no, status FROM run_history WHERE invoke_id = ?"
                                " ORDER BY run_no DESC", (invoke_id,)):
            history.setdefault(h["instance_id"], []).append((h["run_no"], h["status"]))
    entries: list[tuple[_ResultKey, str]] = []
    for r in rows:
        # unconfirmed (ref §2.5 IncludeHistory): order undocumented; chose per instance the current row first,
        # then its past runs newest first.
        entries.append((_ResultKey(r["invoke_id"], r["instance_id"], None), r["status"]))
        for run_no, run_status in history.get(r["instance_id"], []):
            entries.append((_ResultKey(r["invoke_id"], r["instance_id"], run_no), run_status))
    if record_status is not None:
        entries = [e for e in entries if status.record_status(e[1]) == record_status]
    selected = entries[page.offset:page.offset + page.size]
    results = [_result_body(ctx, key, encoding) for key, _ in selected]
    return {"Invocation": {**page_fields(page, len(entries)), "InvocationResults": {"InvocationResult": results}}}


def _result_body(ctx: Context, key: _ResultKey, encoding: str) -> dict[str, Any]:
    inv = ctx.db.execute("SELECT * FROM invocations WHERE invoke_id = ?", (key.invoke_id,)).fetchone()
    if key.run_no is None:
        r = ctx.db.execute("SELECT * FROM invocation_instances WHERE invoke_id = ? AND instance_id = ?",
                           (key.invoke_id, key.instance_id)).fetchone()
        repeats, stop_time = r["run_no"], r["stop_time"]
    else:
        r = ctx.db.execute("SELECT * FROM run_history WHERE invoke_id = ? AND instance_id = ? AND run_no = ?",
                           (key.invoke_id, key.instance_id, key.run_no)).fetchone()
        repeats, stop_time = r["run_no"], None
    row_status = r["status"]
    finished = r["finish_time"]
    if row_status == "Timeout" and r["start_time"] is not None:
        finished = r["start_time"] + inv["timeout"]  # ref §2.5: on timeout FinishedTime = StartTime + Timeout
    item: dict[str, Any] = {
        "InvokeId": key.invoke_id,
        "CommandId": inv["command_id"],
        "InstanceId": key.instance_id,
        "InvocationStatus": row_status,
        "InvokeRecordStatus": status.record_status(row_status),
    }
    if r["exit_code"] is not None:
        item["ExitCode"] = r["exit_code"]  # omitted while no run has finished (as DescribeInvocations)
    item.update({
        "Output": _encode_output(r["output"], encoding),
        "Dropped": r["dropped"],
        "ErrorCode": r["error_code"],
        "ErrorInfo": r["error_info"],
        "Repeats": repeats,
        "StartTime": _time(r["start_time"]),
        "FinishedTime": _time(finished),
        "StopTime": _time(stop_time),
        **_run_settings(inv),
        **_NO_OSS_OUTPUT,
        "Tags": _tags_body(store.tags_of(ctx.db, "invocation_tags", "invoke_id", key.invoke_id)),
    })
    return item


# --------------------------------------------------------------------------------------------------------------
# StopInvocation
# --------------------------------------------------------------------------------------------------------------

@action("StopInvocation", mutating=True)
def stop_invocation(ctx: Context, p: Params) -> dict[str, Any]:
    invoke_id = p.req("InvokeId")
    requested = [i for i in p.list("InstanceId") if i != ""]
    if len(requested) > MAX_STOP_INSTANCES:
        raise ApiError("InstanceIds.ExceedLimit",
                       f"The number of InstanceId entries exceeds the limit of {MAX_STOP_INSTANCES}.", 403)
    inv = ctx.db.execute("SELECT invoke_id FROM invocations WHERE invoke_id = ? AND region_id = ?",
                         (invoke_id, ctx.region_id)).fetchone()
    if inv is None:
        raise ApiError("InvalidInvokeId.NotFound", f"The specified invocation \"{invoke_id}\" does not exist.", 404)
    members = [r["instance_id"] for r in ctx.db.execute(
        "SELECT instance_id FROM invocation_instances WHERE invoke_id = ? ORDER BY rowid", (invoke_id,))]
    for instance_id in requested:
        if instance_id not in members:
            raise ApiError("InvalidInstanceId.NotFound",
                           f"The specified instance \"{instance_id}\" is not part of invocation \"{invoke_id}\".", 404)
    # Omitted InstanceId = every instance of the invocation (ref §2.6, inference).
    targets = list(dict.fromkeys(requested)) if requested else members
    now = store.now()
    with store.transaction(ctx.db) as db:
        _stop_rows(db, invoke_id, targets, now)
        if set(targets) >= set(members):
            # unconfirmed (ref §2.6): chose to set stopped_at only when the stop covers every instance of the
            # execution (a partial stop leaves the other instances alone).
            db.execute("UPDATE invocations SET stopped_at = ? WHERE invoke_id = ?", (now, invoke_id))
    ctx.poke()
    return {}


def _stop_rows(db: sqlite3.Connection, invoke_id: str, instance_ids: Iterable[str], now: float) -> None:
    for instance_id in instance_ids:
        # Not started yet -> Cancelled; running -> Stopping (the agent host kills it -> Terminated). ref §2.6, §6
        # unconfirmed (ref §9.6): chose to interrupt started runs (status model + TerminationMode imply it).
        db.execute(
            "UPDATE invocation_instances SET status = 'Cancelled', stop_time = ?, update_time = ?, next_run_at = NULL"
            " WHERE invoke_id = ? AND instance_id = ? AND status IN ('Pending', 'Scheduled')",
            (now, now, invoke_id, instance_id),
        )
        db.execute(
            "UPDATE invocation_instances SET status = 'Stopping', stop_time = ?, update_time = ?"
            " WHERE invoke_id = ? AND instance_id = ? AND status = 'Running'",
            (now, now, invoke_id, instance_id),
        )
