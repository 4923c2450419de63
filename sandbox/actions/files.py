"""SendFile and DescribeSendFileResults (reference §2.10, §2.11, §3.5, §4.2, §6, §7).

SendFile decides at creation what needs no instance (Invalid / Aborted rows, INTERNALS.md); runnable rows are
`Pending` and the agent host writes the file inside the instance.
"""

from __future__ import annotations

import base64
import binascii
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

from sandbox import store
from sandbox.actions import Context, action
from sandbox.actions.instances import fetch_instances, instance_ids_param
from sandbox.errors import ApiError, missing
from sandbox.paging import page_fields, read_page
from sandbox.params import Params
from sandbox.status import file_overall_status

MAX_INSTANCES = 50
MAX_CONTENT_B64 = 32 * 1024  # bytes of Base64 text (ref §2.10 / §7)
MAX_NAME = 255
MAX_TARGET_DIR = 255
MAX_DESCRIPTION = 512
MAX_OWNER = 64
DEFAULT_TIMEOUT = 60
MIN_TIMEOUT = 10
# unconfirmed (ref §9.4): InvalidTimeout.ExceedLimit exists but no value is documented; chose 86400 s.
MAX_TIMEOUT = 86400
MAX_TAGS = 20

_FILE_MODE = re.compile(r"^[0-7]{3,4}$")
_WINDOWS_DIR = re.compile(r"^[A-Za-z]:[\\/]")
_BAD_ACCOUNT_CHARS = re.compile(r"[\s:/\\\x00]")


# ---------------------------------------------------------------------------------------------------- tags
def _tag_list(p: Params, *, for_filter: bool) -> list[tuple[str, str | None]]:
    """Tag.N.Key/Value with the Cloud Assistant codes (ref §2.10, §6). A filter may omit the Value."""
    tags: list[dict[str, str]] = p.obj_list("Tag")
    if len(tags) > MAX_TAGS:
        raise ApiError("NumberExceed.Tags", f"The number of tags exceeds the limit of {MAX_TAGS}.", 400)
    seen: set[str] = set()
    out: list[tuple[str, str | None]] = []
    for tag in tags:
        key = tag.get("Key", "")
        value = tag.get("Value")
        if not key:
            raise ApiError("MissingParameter.TagKey", "The tag key must not be empty.", 400)
        if key in seen:
            raise ApiError("Duplicate.TagKey", f"The tag key {key!r} is duplicated.", 400)
        seen.add(key)
        lowered = key.lower()
        if (len(key) > 64 or lowered.startswith(("aliyun", "acs:"))
                or "http://" in lowered or "https://" in lowered):
            raise ApiError("InvalidTagKey.Malformed", f"The tag key {key!r} is malformed.", 400)
        if value is not None:
            lowered = value.lower()
            if len(value) > 128 or "http://" in lowered or "https://" in lowered:
                raise ApiError("InvalidTagValue.Malformed", f"The tag value {value!r} is malformed.", 400)
        # unconfirmed (ref §2.11): chose "a filter Tag.N.Key without Tag.N.Value matches any value".
        out.append((key, value if (value is not None or for_filter) else ""))
    return out


# ------------------------------------------------------------------------------------------------- SendFile
def _decode_content(content: str, content_type: str) -> bytes:
    if content_type == "PlainText":
        try:
            return content.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError:
            raise ApiError("FileContent.DecodeError", "The file content is not valid UTF-8 text.", 400) from None
    compact = re.sub(r"\s+", "", content)  # line-wrapped Base64 is accepted
    try:
        if len(compact) % 4:
            raise ValueError("Base64 text must be padded to a multiple of 4 characters")
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("FileContent.DecodeError", "The file content could not be decoded from Base64.", 400) \
            from None


def _content_type(p: Params) -> str:
    value = p.str("ContentType", default="PlainText") or "PlainText"
    # unconfirmed (ref §2.10): chose to match PlainText/Base64 case-insensitively (RunCommand's ContentEncoding is
    # documented as case-insensitive); anything else is FileContentType.Invalid.
    for canonical in ("PlainText", "Base64"):
        if value.lower() == canonical.lower():
            return canonical
    raise ApiError("FileContentType.Invalid", f'The specified ContentType "{value}" is not valid.', 400)


def _account(p: Params, name: str) -> str:
    value = p.str(name, default="root") or "root"
    if len(value) > MAX_OWNER or _BAD_ACCOUNT_CHARS.search(value):
        raise ApiError(f"InvalidParameter.{name}", f'The specified "{name}" is not valid.', 400)
    return value


def _target_dir(p: Params) -> str:
    target_dir: str = p.req("TargetDir")
    if (len(target_dir) > MAX_TARGET_DIR or "\x00" in target_dir
            or not (target_dir.startswith("/") or _WINDOWS_DIR.match(target_dir))):
        raise ApiError("FileTargetDir.Invalid",
                       f'The specified TargetDir "{target_dir}" is not valid: it must be an absolute path of at most '
                       f"{MAX_TARGET_DIR} characters.", 400)
    return target_dir


def _timeout(p: Params) -> int:
    timeout = p.int("Timeout", default=DEFAULT_TIMEOUT)
    assert timeout is not None
    if timeout > MAX_TIMEOUT:
        raise ApiError("InvalidTimeout.ExceedLimit",
                       f"The specified Timeout ({timeout}) exceeds the limit of {MAX_TIMEOUT} seconds.", 403)
    return max(timeout, MIN_TIMEOUT)  # ref §2.10: values < 10 are raised to 10


def _name_is_valid(name: str) -> bool:
    return "/" not in name and "\x00" not in name and name not in (".", "..")


def _instance_verdict(row: sqlite3.Row, name: str, target_dir: str, content: bytes) -> tuple[str, str, str]:
    """(status, ErrorCode, ErrorInfo) decided at creation; ('Pending', '', '') when the agent host must write."""
    if row["os_type"] != "linux":
        # unconfirmed (ref §4.2): the sandbox writes files only on Linux instances; no documented code says so.
        # Chose Invalid + FileCreateFail ("the file creation is failed ...") with an explicit ErrorInfo.
        return ("Invalid", "FileCreateFail",
                "the file creation is failed: the sandbox does not write files on Windows instances")
    if not _name_is_valid(name):
        # unconfirmed (ref §2.10 says "any characters", §4.2 lists FileNameInvalid): a name containing '/',
        # NUL, or equal to '.'/'..' cannot name a file in TargetDir; chose per-instance Invalid + FileNameInvalid
        # rather than failing the call.
        return "Invalid", "FileNameInvalid", "File name is invalid"
    if not target_dir.startswith("/"):
        # a Windows-style TargetDir (C:\...) sent to a Linux instance
        return "Invalid", "FilePathInvalid", "File path is invalid"
    if not content:
        # unconfirmed (ref §4.2 ErrorInfo "File content is empty"): chose Invalid + FileContentInvalid for an
        # empty Content.
        return "Invalid", "FileContentInvalid", "File content is empty"
    if not row["agent_running"]:
        return "Aborted", "ClientNotRunning", "the aliyun service is not running on the instance"
    return "Pending", "", ""


@action("SendFile", mutating=True, client_token=True)
def send_file(ctx: Context, p: Params) -> dict[str, Any]:
    ids = instance_ids_param(p, MAX_INSTANCES)
    name = p.req("Name", max_len=MAX_NAME, too_long_code="FileName.ExceedLimit")
    target_dir = _target_dir(p)
    if "Content" not in p.raw:
        raise missing("Content")
    raw_content = p.raw["Content"]
    content_type = _content_type(p)
    content = _decode_content(raw_content, content_type)
    b64_size = len(base64.b64encode(content))
    if b64_size > MAX_CONTENT_B64:
        raise ApiError("FileSize.ExceedLimit",
                       f"The file content is {b64_size} bytes after Base64 encoding; the limit is {MAX_CONTENT_B64}.",
                       403)
    description = p.str("Description", default="", max_len=MAX_DESCRIPTION, too_long_code="FileDesc.ExceedLimit")
    timeout = _timeout(p)
    owner = _account(p, "FileOwner")
    group = _account(p, "FileGroup")
    file_mode = p.str("FileMode", default="0644") or "0644"
    if not _FILE_MODE.match(file_mode):
        raise ApiError("FileMode.Invalid", f'The specified FileMode "{file_mode}" is not valid.', 400)
    overwrite = p.bool("Overwrite", default=False)
    tags = _tag_list(p, for_filter=False)
    resource_group_id = p.str("ResourceGroupId", default="") or ""

    found = fetch_instances(ctx.db, ctx.region_id, ids)
    not_ready = [i for i in ids if found[i]["status"] != "Running" or not found[i]["agent_installed"]]
    if not_ready:
        # ref §2.10 preconditions (Running, agent installed); like RunCommand, any ineligible instance fails the
        # whole call. unconfirmed (ref §6 gives 403/400): chose HTTP 400.
        raise ApiError("InvalidInstance.NotMatch",
                       f"The specified instance {not_ready[0]} is not running or has no Cloud Assistant agent.", 400)

    ts = store.now()
    invoke_id = store.new_id("f", ctx.region_id)
    rows = []
    for instance_id in ids:
        status, code, info = _instance_verdict(found[instance_id], name, target_dir, content)
        finish = None if status == "Pending" else ts
        rows.append((invoke_id, instance_id, status, code, info, ts, finish, ts))
    with store.transaction(ctx.db):
        seq = store.next_seq(ctx.db, "file_tasks")
        ctx.db.execute(
            "INSERT INTO file_tasks(invoke_id, region_id, name, description, content, content_type, target_dir,"
            " file_owner, file_group, file_mode, overwrite, timeout, resource_group_id, created_at, seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (invoke_id, ctx.region_id, name, description, content, content_type, target_dir, owner, group,
             file_mode, int(overwrite), timeout, resource_group_id, ts, seq),
        )
        ctx.db.executemany(
            "INSERT INTO file_task_instances(invoke_id, instance_id, status, error_code, error_info,"
            " creation_time, finish_time, update_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if tags:
            ctx.db.executemany(
                "INSERT INTO file_task_tags(invoke_id, tag_key, tag_value) VALUES (?, ?, ?)",
                [(invoke_id, k, v or "") for k, v in tags],
            )
    ctx.poke()
    return {"InvokeId": invoke_id}


# ---------------------------------------------------------------------------------- DescribeSendFileResults
def _marks(items: Sequence[object]) -> str:
    return ",".join("?" * len(items))


def _content_out(content: bytes, content_type: str) -> str:
    """Content as it was sent: Base64 text for Base64, the text itself for PlainText."""
    if content_type == "Base64":
        return base64.b64encode(content).decode("ascii")
    return content.decode("utf-8", errors="replace")


def _instance_out(r: sqlite3.Row) -> dict[str, Any]:
    return {
        "InstanceId": r["instance_id"],
        "InvocationStatus": r["status"],
        "ErrorCode": r["error_code"],
        "ErrorInfo": r["error_info"],
        "CreationTime": store.iso(r["creation_time"]),
        "StartTime": store.iso(r["start_time"]),
        "FinishTime": store.iso(r["finish_time"]),
        "UpdateTime": store.iso(r["update_time"]),
    }


@action("DescribeSendFileResults")
def describe_send_file_results(ctx: Context, p: Params) -> dict[str, Any]:
    where = ["f.region_id = ?"]
    args: list[Any] = [ctx.region_id]
    for param, column in (("InvokeId", "invoke_id"), ("Name", "name"), ("ResourceGroupId", "resource_group_id")):
        value = p.str(param)
        if value is not None:
            where.append(f"f.{column} = ?")
            args.append(value)
    instance_id = p.str("InstanceId")
    if instance_id is not None:
        where.append("EXISTS (SELECT 1 FROM file_task_instances x WHERE x.invoke_id = f.invoke_id"
                     " AND x.instance_id = ?)")
        args.append(instance_id)
    for key, value in _tag_list(p, for_filter=True):
        if value is None:
            where.append("EXISTS (SELECT 1 FROM file_task_tags t WHERE t.invoke_id = f.invoke_id AND t.tag_key = ?)")
            args.append(key)
        else:
            where.append("EXISTS (SELECT 1 FROM file_task_tags t WHERE t.invoke_id = f.invoke_id"
                         " AND t.tag_key = ? AND t.tag_value = ?)")
            args.extend((key, value))
    wanted_status = p.str("InvocationStatus")
    page = read_page(p, max_size=50)
    clause = " AND ".join(where)

    if wanted_status is None:
        total = ctx.db.execute(f"SELECT COUNT(*) FROM file_tasks f WHERE {clause}", args).fetchone()[0]  # noqa: S608
        page_ids = [r[0] for r in ctx.db.execute(
            f"SELECT f.invoke_id FROM file_tasks f WHERE {clause} ORDER BY f.seq DESC LIMIT ? OFFSET ?",  # noqa: S608
            (*args, page.size, page.offset),
        )]
    else:
        statuses: dict[str, list[str]] = {}
        order: list[str] = []
        for r in ctx.db.execute(
            f"SELECT f.invoke_id, x.status FROM file_tasks f JOIN file_task_instances x"  # noqa: S608
            f" ON x.invoke_id = f.invoke_id WHERE {clause} ORDER BY f.seq DESC",
            args,
        ):
            if r[0] not in statuses:
                statuses[r[0]] = []
                order.append(r[0])
            statuses[r[0]].append(r[1])
        # unconfirmed (ref §2.11): chose a case-insensitive match on the overall status; unknown values match none.
        matching = [i for i in order if file_overall_status(statuses[i]).lower() == wanted_status.lower()]
        total = len(matching)
        page_ids = matching[page.offset:page.offset + page.size]

    invocations: list[dict[str, Any]] = []
    if page_ids:
        tasks = {r["invoke_id"]: r for r in ctx.db.execute(
            f"SELECT * FROM file_tasks WHERE invoke_id IN ({_marks(page_ids)})", page_ids)}  # noqa: S608
        members: dict[str, list[sqlite3.Row]] = {i: [] for i in page_ids}
        for r in ctx.db.execute(
            f"SELECT x.* FROM file_task_instances x JOIN instances i ON i.instance_id = x.instance_id"  # noqa: S608
            f" WHERE x.invoke_id IN ({_marks(page_ids)}) ORDER BY x.invoke_id, i.seq",
            page_ids,
        ):
            members[r["invoke_id"]].append(r)
        # rows whose instance row is gone (never happens in the sandbox, but keep them visible)
        known = {(r["invoke_id"], r["instance_id"]) for rs in members.values() for r in rs}
        for r in ctx.db.execute(
            f"SELECT * FROM file_task_instances WHERE invoke_id IN ({_marks(page_ids)})", page_ids):  # noqa: S608
            if (r["invoke_id"], r["instance_id"]) not in known:
                members[r["invoke_id"]].append(r)
        tags: dict[str, list[dict[str, str]]] = {i: [] for i in page_ids}
        for t in ctx.db.execute(
            f"SELECT invoke_id, tag_key, tag_value FROM file_task_tags WHERE invoke_id IN ({_marks(page_ids)})"  # noqa: S608
            " ORDER BY invoke_id, tag_key",
            page_ids,
        ):
            tags[t[0]].append({"TagKey": t[1], "TagValue": t[2]})
        for invoke_id in page_ids:
            task = tasks[invoke_id]
            rows = members[invoke_id]
            # unconfirmed (ref §2.11): with an InstanceId filter chose to list only that instance's row, while
            # VmCount and the overall InvocationStatus still cover every instance of the task.
            shown = [r for r in rows if instance_id is None or r["instance_id"] == instance_id]
            invocations.append({
                "InvokeId": invoke_id,
                "Name": task["name"],
                "Description": task["description"],
                "Content": _content_out(task["content"], task["content_type"]),
                "ContentType": task["content_type"],
                "TargetDir": task["target_dir"],
                "FileOwner": task["file_owner"],
                "FileGroup": task["file_group"],
                "FileMode": task["file_mode"],
                "Overwrite": "true" if task["overwrite"] else "false",  # SDK types it str (ref §2.11, §9.9)
                "VmCount": len(rows),
                "CreationTime": store.iso(task["created_at"]),
                "InvocationStatus": file_overall_status([r["status"] for r in rows]),
                "Tags": {"Tag": tags[invoke_id]},
                "InvokeInstances": {"InvokeInstance": [_instance_out(r) for r in shown]},
            })
    return {**page_fields(page, total), "Invocations": {"Invocation": invocations}}
