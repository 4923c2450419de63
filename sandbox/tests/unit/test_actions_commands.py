"""Unit tests of sandbox/actions/commands.py against a temporary database (no server, no agent host)."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models

from sandbox import schedule, store
from sandbox.actions import ACTIONS, Context
from sandbox.actions import commands as cmds
from sandbox.errors import ApiError
from sandbox.params import Params

REGION = "cn-hangzhou"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Env:
    def __init__(self, tmp: Path) -> None:
        self.db = store.connect(tmp)
        store.init_schema(self.db)
        self.db.executemany("INSERT INTO regions(region_id, local_name) VALUES (?, ?)",
                            [(REGION, "China (Hangzhou)"), ("cn-beijing", "China (Beijing)")])
        self.pokes = 0
        self.ctx = Context(db=self.db, request_id="R", region_id=REGION, state_dir=tmp, isolation="process",
                           access_key_id="AK", poke=self._poke)
        self._seq = 0

    def _poke(self) -> None:
        self.pokes += 1

    def instance(self, instance_id: str, *, region: str = REGION, os_type: str = "linux", status: str = "Running",
                 agent_installed: int = 1, agent_running: int = 1, tags: dict[str, str] | None = None) -> str:
        self._seq += 1
        self.db.execute(
            "INSERT INTO instances(instance_id, region_id, zone_id, instance_name, hostname, os_type, os_name,"
            " instance_type, private_ip, status, agent_installed, agent_running, agent_version, created_at, seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'ecs.g7.large', '10.0.0.1', ?, ?, ?, '2.2.3.857', ?, ?)",
            (instance_id, region, region + "-h", instance_id, instance_id, os_type, os_type, status,
             agent_installed, agent_running, store.now(), self._seq),
        )
        for k, v in (tags or {}).items():
            self.db.execute("INSERT INTO instance_tags VALUES (?, ?, ?)", (instance_id, k, v))
        return instance_id

    def call(self, action_name: str, params: dict[str, Any] | None = None, region: str = REGION) -> dict[str, Any]:
        self.ctx.region_id = region
        raw = {k: str(v) for k, v in (params or {}).items()}
        return ACTIONS[action_name].handler(self.ctx, Params(raw))

    def fails(self, action_name: str, params: dict[str, Any], code: str, http: int) -> ApiError:
        with pytest.raises(ApiError) as info:
            self.call(action_name, params)
        assert (info.value.code, info.value.status) == (code, http), info.value.message
        return info.value

    def run(self, content: str = "echo hi", *instances: str, **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"Type": "RunShellScript", "CommandContent": content}
        for n, iid in enumerate(instances or ("i-a",), 1):
            params[f"InstanceId.{n}"] = iid
        params.update(extra)
        return self.call("RunCommand", params)

    def rows(self, invoke_id: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM invocation_instances WHERE invoke_id = ? ORDER BY rowid",
                               (invoke_id,)).fetchall()

    def set_row(self, invoke_id: str, instance_id: str, **cols: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in cols)
        self.db.execute(f"UPDATE invocation_instances SET {sets} WHERE invoke_id = ? AND instance_id = ?",
                        [*cols.values(), invoke_id, instance_id])

    def count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    e.instance("i-a")
    e.instance("i-b")
    return e


# ---------------------------------------------------------------------------------------------------- RunCommand

def test_run_command_creates_hidden_command_and_pending_rows(env: Env) -> None:
    before = store.now()
    out = env.run("echo hi", "i-b", "i-a", "i-b")
    assert set(out) == {"CommandId", "InvokeId"}
    assert re.fullmatch(r"c-hz[a-z0-9]{14}", out["CommandId"])
    assert re.fullmatch(r"t-hz[a-z0-9]{14}", out["InvokeId"])
    assert env.pokes == 1
    cmd = env.db.execute("SELECT * FROM commands").fetchone()
    assert (cmd["visible"], cmd["invoke_times"], cmd["content"], cmd["timeout"]) == (0, 1, "echo hi", 60)
    inv = env.db.execute("SELECT * FROM invocations").fetchone()
    assert (inv["repeat_mode"], inv["parameters"], inv["termination_mode"], inv["command_id"]) == (
        "Once", "{}", "ProcessTree", out["CommandId"])
    rows = env.rows(out["InvokeId"])
    assert [r["instance_id"] for r in rows] == ["i-b", "i-a"]  # duplicates collapse, order kept
    for r in rows:
        assert r["status"] == "Pending" and r["run_no"] == 0
        assert r["next_run_at"] is not None and r["next_run_at"] >= before
    last = env.db.execute("SELECT last_invoked FROM instances WHERE instance_id = 'i-a'").fetchone()[0]
    assert last is not None and last >= before
    assert env.call("DescribeCommands")["Commands"]["Command"] == []


def test_run_command_keep_command_lists_it(env: Env) -> None:
    out = env.run("echo hi", KeepCommand="True", Name="keep", Description="d")
    listed = env.call("DescribeCommands")["Commands"]["Command"]
    assert [c["CommandId"] for c in listed] == [out["CommandId"]]
    assert listed[0]["InvokeTimes"] == 1 and listed[0]["Name"] == "keep"
    inv = env.db.execute("SELECT command_name, command_description FROM invocations").fetchone()
    assert tuple(inv) == ("keep", "d")


def test_run_command_content_encoding(env: Env) -> None:
    out = env.run(b64("echo é"), ContentEncoding="base64")
    assert env.db.execute("SELECT command_content FROM invocations WHERE invoke_id = ?",
                          (out["InvokeId"],)).fetchone()[0] == "echo é"
    # an invalid encoding value is PlainText for RunCommand
    out = env.run("ZWNobw==", ContentEncoding="Hex")
    assert env.db.execute("SELECT command_content FROM invocations WHERE invoke_id = ?",
                          (out["InvokeId"],)).fetchone()[0] == "ZWNobw=="
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "!!notbase64", "ContentEncoding": "Base64",
                             "InstanceId.1": "i-a"}, "CmdContent.DecodeError", 400)


def test_run_command_content_size_limit(env: Env) -> None:
    env.run("x" * 18432)  # Base64 length exactly 24576
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "x" * 18433, "InstanceId.1": "i-a"},
              "CmdContent.ExceedLimit", 403)
    # content + Parameters together
    content = "echo {{p}}" + "x" * 18400
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": content, "InstanceId.1": "i-a",
                             "EnableParameter": "true", "Parameters": json.dumps({"p": "y" * 100})},
              "CmdContent.ExceedLimit", 403)


@pytest.mark.parametrize(("param", "value", "code", "http"), [
    ("Name", "n" * 129, "CmdName.ExceedLimit", 403),
    ("Description", "d" * 513, "CmdDesc.ExceedLimit", 403),
    ("WorkingDir", "/" * 201, "InvalidParameter.WorkingDir", 400),
    ("Username", "u" * 256, "Username.ExceedLimit", 403),
    ("WindowsPasswordName", "w" * 256, "WindowsPasswordName.ExceedLimit", 403),
    ("Launcher", "l" * 1025, "InvalidLauncher.LengthLimitExceeded", 403),
    ("Type", "RunPythonScript", "InvalidCmdType.NotFound", 404),
    ("Timeout", "9", "InvalidTimeout.ExceedLimit", 403),
    ("Timeout", "86401", "InvalidTimeout.ExceedLimit", 403),
    ("Timeout", "abc", "InvalidParameter.Timeout", 400),
    ("TerminationMode", "Kill", "InvalidTerminationMode.NotFound", 404),
    ("RepeatMode", "Twice", "InvalidRepeatMode.NotFound", 404),
    ("RepeatMode", "Period", "MissingParam.Frequency", 400),
    ("Frequency", "rate(bogus)", "InvalidParam.Frequency", 400),
    ("ContainerId", "abc", "InvalidContainerId.Malformed", 400),
    ("ContainerName", "bad name!", "InvalidContainerName.Malformed", 400),
    ("Parameters", "{not json", "InvalidParameter.Parameters", 400),
    ("Parameters", "[1, 2]", "InvalidParameter.Parameters", 400),
    ("Parameters", '{"a": "b"}', "Parameter.Disabled", 400),
])
def test_run_command_parameter_errors(env: Env, param: str, value: str, code: str, http: int) -> None:
    params = {"Type": "RunShellScript", "CommandContent": "echo hi", "InstanceId.1": "i-a", param: value}
    env.fails("RunCommand", params, code, http)
    assert env.count("invocations") == 0 and env.count("commands") == 0


@pytest.mark.parametrize("command_type", ["RunBatScript", "RunPowerShellScript"])
def test_windows_user_other_than_system_needs_windows_password_name(env: Env, command_type: str) -> None:
    """Ref §2.1/§2.3: WindowsPasswordName is needed with a non-System Windows Username (403 .Missed)."""
    env.instance("i-w", os_type="windows")
    base = {"Type": command_type, "CommandContent": "echo hi", "InstanceId.1": "i-w"}
    for user in ("admin", "Administrator", "systemd"):
        env.fails("RunCommand", {**base, "Username": user}, "WindowsPasswordName.Missed", 403)
        env.fails("RunCommand", {**base, "Username": user, "WindowsPasswordName": ""}, "WindowsPasswordName.Missed",
                  403)
    assert env.count("invocations") == 0 and env.count("commands") == 0
    for extra in ({}, {"Username": ""}, {"Username": "System"}, {"Username": "SYSTEM"}, {"Username": "system"},
                  {"Username": "admin", "WindowsPasswordName": "axt-admin-password"}):
        assert env.call("RunCommand", {**base, **extra})["InvokeId"]
    env.fails("RunCommand", {**base, "Username": "admin", "WindowsPasswordName": "w" * 256},
              "WindowsPasswordName.ExceedLimit", 403)
    env.run("echo", "i-a", Username="admin")  # Linux shell scripts need no password name


def test_invoke_command_windows_password_name_follows_the_saved_type(env: Env) -> None:
    env.instance("i-w", os_type="windows")
    bat = _create(env, "echo hi", Name="bat", Type="RunBatScript")
    shell = _create(env, "echo hi", Name="sh", Type="RunShellScript")
    env.fails("InvokeCommand", {"CommandId": bat, "InstanceId.1": "i-w", "Username": "admin"},
              "WindowsPasswordName.Missed", 403)
    env.fails("InvokeCommand", {"CommandId": bat, "InstanceId.1": "i-w", "Username": "admin",
                                "WindowsPasswordName": "p" * 256}, "WindowsPasswordName.ExceedLimit", 403)
    assert env.count("invocations") == 0
    env.call("InvokeCommand", {"CommandId": bat, "InstanceId.1": "i-w", "Username": "admin",
                               "WindowsPasswordName": "axt-admin-password"})
    env.call("InvokeCommand", {"CommandId": bat, "InstanceId.1": "i-w", "Username": "System"})
    env.call("InvokeCommand", {"CommandId": shell, "InstanceId.1": "i-a", "Username": "admin"})
    assert env.count("invocations") == 3


@pytest.mark.parametrize("value", ["1", "1.5", "true", "false", "null", "[]", '["x"]', "{}", '{"k": "v"}'])
def test_parameter_values_must_be_strings(env: Env, value: str) -> None:
    """Ref §2.3: a custom parameter value that is not a JSON string -> ParameterType.NotSupported (403)."""
    parameters = f'{{"name": {value}}}'
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo {{name}}", "InstanceId.1": "i-a",
                             "EnableParameter": "true", "Parameters": parameters}, "ParameterType.NotSupported", 403)
    cid = _create(env, "echo {{name}}", Name="p", EnableParameter="true")
    env.fails("InvokeCommand", {"CommandId": cid, "InstanceId.1": "i-a", "Parameters": parameters},
              "ParameterType.NotSupported", 403)
    assert env.count("invocations") == 0
    env.call("InvokeCommand", {"CommandId": cid, "InstanceId.1": "i-a", "Parameters": '{"name": ""}'})


def test_run_command_limits_accept_boundaries(env: Env) -> None:
    out = env.run("echo", Name="n" * 128, Description="d" * 512, WorkingDir="/" * 200, Username="u" * 255,
                  Launcher="l" * 1024, Timeout="86400", TerminationMode="Process")
    inv = env.db.execute("SELECT * FROM invocations WHERE invoke_id = ?", (out["InvokeId"],)).fetchone()
    assert (inv["timeout"], inv["termination_mode"], len(inv["launcher"])) == (86400, "Process", 1024)
    env.run("echo", Timeout="10")


def test_run_command_missing_required(env: Env) -> None:
    env.fails("RunCommand", {"CommandContent": "echo", "InstanceId.1": "i-a"}, "MissingParameter.Type", 400)
    env.fails("RunCommand", {"Type": "RunShellScript", "InstanceId.1": "i-a"}, "MissingParameter.CommandContent", 400)
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo"}, "MissingParam.InstanceId", 400)


def test_run_command_instance_checks(env: Env) -> None:
    many = {f"InstanceId.{n}": f"i-x{n}" for n in range(1, 102)}
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo", **many},
              "InstanceIds.ExceedLimit", 403)
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo", "InstanceId.1": "i-a",
                             "InstanceId.2": "i-nope"}, "InvalidInstance.NotFound", 404)
    env.instance("i-bj", region="cn-beijing")
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo", "InstanceId.1": "i-bj"},
              "InvalidInstance.NotFound", 404)
    env.instance("i-stopped", status="Stopped")
    env.instance("i-noagent", agent_installed=0)
    for bad in ("i-stopped", "i-noagent"):
        env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo", "InstanceId.1": "i-a",
                                 "InstanceId.2": bad}, "InvalidInstance.NotMatch", 400)
    assert env.count("invocations") == 0 and env.count("invocation_instances") == 0


def test_run_command_per_instance_rows(env: Env) -> None:
    env.instance("i-win", os_type="windows")
    env.instance("i-off", agent_running=0)
    out = env.run("echo", "i-a", "i-win", "i-off")
    rows = {r["instance_id"]: r for r in env.rows(out["InvokeId"])}
    assert rows["i-a"]["status"] == "Pending"
    assert (rows["i-win"]["status"], rows["i-win"]["error_code"]) == ("Invalid", "CommandNotApplicable")
    assert rows["i-win"]["error_info"] == "the command is not applicable"
    assert rows["i-win"]["next_run_at"] is None and rows["i-win"]["finish_time"] is not None
    assert (rows["i-off"]["status"], rows["i-off"]["error_code"]) == ("Aborted", "ClientNotRunning")
    out = env.call("RunCommand", {"Type": "RunBatScript", "CommandContent": "dir", "InstanceId.1": "i-a",
                                  "InstanceId.2": "i-win"})
    rows = {r["instance_id"]: r for r in env.rows(out["InvokeId"])}
    assert rows["i-a"]["status"] == "Invalid" and rows["i-win"]["status"] == "Pending"
    body = env.call("DescribeInvocations", {"InvokeId": out["InvokeId"]})
    assert body["Invocations"]["Invocation"][0]["InvocationStatus"] == "Pending"


def test_run_command_container_rows_are_invalid(env: Env) -> None:
    cid = "docker://" + "a" * 64
    out = env.run("echo", "i-a", ContainerId=cid)
    row = env.rows(out["InvokeId"])[0]
    assert (row["status"], row["error_code"]) == ("Invalid", "CommandNotApplicable")
    assert "container" in row["error_info"]
    inv = env.call("DescribeInvocations", {"InvokeId": out["InvokeId"]})["Invocations"]["Invocation"][0]
    assert inv["ContainerId"] == cid
    out = env.run("echo", "i-a", ContainerName="web-1")
    assert env.rows(out["InvokeId"])[0]["status"] == "Invalid"


def test_run_command_resource_tags(env: Env) -> None:
    env.instance("i-t1", tags={"env": "prod", "app": "web"})
    env.instance("i-t2", tags={"env": "prod", "app": "db"})
    env.instance("i-t3", tags={"env": "dev"})
    env.instance("i-bj", region="cn-beijing", tags={"env": "prod"})
    out = env.call("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo",
                                  "ResourceTag.1.Key": "env", "ResourceTag.1.Value": "prod"})
    assert [r["instance_id"] for r in env.rows(out["InvokeId"])] == ["i-t1", "i-t2"]
    out = env.call("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo",
                                  "ResourceTag.1.Key": "env", "ResourceTag.1.Value": "prod",
                                  "ResourceTag.2.Key": "app", "ResourceTag.2.Value": "db"})
    assert [r["instance_id"] for r in env.rows(out["InvokeId"])] == ["i-t2"]
    out = env.call("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo", "ResourceTag.1.Key": "env"})
    assert [r["instance_id"] for r in env.rows(out["InvokeId"])] == ["i-t1", "i-t2", "i-t3"]  # empty value: any
    base = {"Type": "RunShellScript", "CommandContent": "echo"}
    env.fails("RunCommand", {**base, "ResourceTag.1.Key": "env", "ResourceTag.1.Value": "none"},
              "InvalidResourceTag.InstanceNotFound", 400)
    env.fails("RunCommand", {**base, "ResourceTag.1.Key": "env", "InstanceId.1": "i-a"},
              "InvalidResourceTag.ConflictWithInstanceIds", 400)
    env.fails("RunCommand", {**base, "ResourceTag.1.Value": "x"}, "MissingParameter.ResourceTagKey", 400)
    env.fails("RunCommand", {**base, "ResourceTag.1.Key": "acs:x"}, "InvalidResourceTagKey.Malformed", 400)
    env.fails("RunCommand", {**base, "ResourceTag.1.Key": "k", "ResourceTag.1.Value": "v" * 129},
              "InvalidResourceTagValue.Malformed", 400)
    env.fails("RunCommand", {**base, "ResourceTag.1.Key": "env", "ResourceTag.2.Key": "env"},
              "Duplicate.ResourceTagKey", 400)
    many = {f"ResourceTag.{n}.Key": f"k{n}" for n in range(1, 22)}
    env.fails("RunCommand", {**base, **many}, "NumberExceed.ResourceTags", 400)


def test_run_command_resource_tag_match_limit(env: Env) -> None:
    for n in range(101):
        env.instance(f"i-many{n:03d}", tags={"fleet": "big"})
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo", "ResourceTag.1.Key": "fleet",
                             "ResourceTag.1.Value": "big"}, "InstanceIds.ExceedLimit", 403)
    env.instance("i-stopped", status="Stopped", tags={"grp": "x"})
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo", "ResourceTag.1.Key": "grp"},
              "InvalidInstance.NotMatch", 400)


def test_run_command_repeat_modes(env: Env) -> None:
    out = env.run("echo", Frequency="rate(5m)", RepeatMode="Once")
    inv = env.db.execute("SELECT * FROM invocations WHERE invoke_id = ?", (out["InvokeId"],)).fetchone()
    assert (inv["repeat_mode"], inv["frequency"]) == ("Period", "rate(5m)")
    row = env.rows(out["InvokeId"])[0]
    expected = schedule.parse_frequency("rate(5m)", 60).next_after(inv["created_at"])
    assert row["status"] == "Scheduled" and row["next_run_at"] == pytest.approx(expected)
    for mode in ("NextRebootOnly", "EveryReboot"):
        out = env.run("echo", RepeatMode=mode)
        row = env.rows(out["InvokeId"])[0]
        assert (row["status"], row["next_run_at"]) == ("Scheduled", None)
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo", "InstanceId.1": "i-a",
                             "Frequency": "at(2000-01-01 00:00:00)"}, "InvalidParam.Frequency", 400)


def test_run_command_dry_run_creates_nothing(env: Env) -> None:
    assert env.run("echo", RepeatMode="DryRun") == {"CommandId": "", "InvokeId": ""}
    assert env.count("commands") == 0 and env.count("invocations") == 0 and env.pokes == 0
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo", "InstanceId.1": "i-nope",
                             "RepeatMode": "DryRun"}, "InvalidInstance.NotFound", 404)
    env.fails("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo", "InstanceId.1": "i-a",
                             "RepeatMode": "DryRun", "Frequency": "bogus"}, "InvalidParam.Frequency", 400)


def test_run_command_parameters(env: Env) -> None:
    out = env.run("echo {{ name }} {{ACS::InstanceId}}", EnableParameter="True",
                  Parameters=json.dumps({"name": "Jack"}), KeepCommand="true")
    inv = env.db.execute("SELECT parameters FROM invocations WHERE invoke_id = ?", (out["InvokeId"],)).fetchone()
    assert json.loads(inv[0]) == {"name": "Jack"}
    base = {"Type": "RunShellScript", "InstanceId.1": "i-a", "EnableParameter": "true"}
    env.fails("RunCommand", {**base, "CommandContent": "echo {{bad name}}"}, "CmdParam.InvalidParamName", 400)
    env.fails("RunCommand", {**base, "CommandContent": "echo {{a}}", "Parameters": '{"b": "1"}'},
              "Parameter.NotMatched", 403)
    # without EnableParameter braces are literal text
    env.run("docker inspect -f {{.State.Running}} x")


def test_run_command_tags(env: Env) -> None:
    out = env.run("echo", **{"Tag.1.Key": "team", "Tag.1.Value": "ops", "Tag.2.Key": "empty"}, KeepCommand="true")
    assert store.tags_of(env.db, "invocation_tags", "invoke_id", out["InvokeId"]) == [
        {"TagKey": "empty", "TagValue": ""}, {"TagKey": "team", "TagValue": "ops"}]
    assert len(store.tags_of(env.db, "command_tags", "command_id", out["CommandId"])) == 2
    base = {"Type": "RunShellScript", "CommandContent": "echo", "InstanceId.1": "i-a"}
    env.fails("RunCommand", {**base, "Tag.1.Key": "aliyun-x"}, "InvalidTagKey.Malformed", 400)
    env.fails("RunCommand", {**base, "Tag.1.Key": "acs:x"}, "InvalidTagKey.Malformed", 400)
    env.fails("RunCommand", {**base, "Tag.1.Key": "k" * 65}, "InvalidTagKey.Malformed", 400)
    env.fails("RunCommand", {**base, "Tag.1.Key": "k", "Tag.1.Value": "v" * 129}, "InvalidTagValue.Malformed", 400)
    env.fails("RunCommand", {**base, "Tag.1.Value": "v"}, "MissingParameter.TagKey", 400)
    env.fails("RunCommand", {**base, "Tag.1.Key": "k", "Tag.2.Key": "k"}, "Duplicate.TagKey", 400)
    many = {f"Tag.{n}.Key": f"k{n}" for n in range(1, 22)}
    env.fails("RunCommand", {**base, **many}, "NumberExceed.Tags", 400)


# ------------------------------------------------------------------------------------------------- CreateCommand

def test_create_command(env: Env) -> None:
    out = env.call("CreateCommand", {"Name": "deploy", "Type": "RunShellScript",
                                     "CommandContent": b64("echo {{who}} {{ ACS::RegionId }} {{where}} {{who}}"),
                                     "EnableParameter": "true", "Description": "desc", "WorkingDir": "/tmp",
                                     "Timeout": "120", "Launcher": "bash {{ACS::ScriptFileName}}",
                                     "ResourceGroupId": "rg-1", "Tag.1.Key": "k", "Tag.1.Value": "v"})
    assert set(out) == {"CommandId"} and out["CommandId"].startswith("c-hz")
    assert env.pokes == 0
    listed = env.call("DescribeCommands", {"ContentEncoding": "PlainText"})["Commands"]["Command"]
    assert len(listed) == 1
    c = listed[0]
    assert c["CommandContent"] == "echo {{who}} {{ ACS::RegionId }} {{where}} {{who}}"
    assert c["ParameterNames"] == {"ParameterName": ["who", "where"]}
    assert c["ParameterDefinitions"] == {"ParameterDefinition": []}
    assert (c["Timeout"], c["WorkingDir"], c["EnableParameter"], c["InvokeTimes"]) == (120, "/tmp", True, 0)
    assert (c["ResourceGroupId"], c["Launcher"], c["Description"]) == ("rg-1", "bash {{ACS::ScriptFileName}}", "desc")
    assert c["Tags"] == {"Tag": [{"TagKey": "k", "TagValue": "v"}]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ", c["CreationTime"])


def test_create_command_encoding_and_errors(env: Env) -> None:
    out = env.call("CreateCommand", {"Name": "p", "Type": "RunBatScript", "CommandContent": "dir",
                                     "ContentEncoding": "plaintext"})
    assert env.db.execute("SELECT content FROM commands WHERE command_id = ?",
                          (out["CommandId"],)).fetchone()[0] == "dir"
    # an invalid encoding is Base64 for CreateCommand
    env.fails("CreateCommand", {"Name": "p", "Type": "RunShellScript", "CommandContent": "echo hi!",
                                "ContentEncoding": "bogus"}, "CmdContent.DecodeError", 400)
    env.fails("CreateCommand", {"Name": "p", "Type": "RunShellScript", "CommandContent": "echo hi!"},
              "CmdContent.DecodeError", 400)
    env.fails("CreateCommand", {"Type": "RunShellScript", "CommandContent": b64("x")}, "MissingParameter.Name", 400)
    base = {"Name": "n", "Type": "RunShellScript", "CommandContent": b64("echo")}
    env.fails("CreateCommand", {**base, "Name": "n" * 129}, "CmdName.ExceedLimit", 403)
    env.fails("CreateCommand", {**base, "Description": "d" * 513}, "CmdDesc.ExceedLimit", 403)
    env.fails("CreateCommand", {**base, "Type": "Shell"}, "InvalidCmdType.NotFound", 404)
    env.fails("CreateCommand", {**base, "Timeout": "86401"}, "InvalidTimeout.ExceedLimit", 403)
    env.fails("CreateCommand", {**base, "Launcher": "x" * 1025}, "InvalidLauncher.LengthLimitExceeded", 403)
    env.fails("CreateCommand", {**base, "CommandContent": b64("x" * 18433)}, "CmdContent.ExceedLimit", 403)
    env.call("CreateCommand", {**base, "CommandContent": b64("x" * 18432)})
    env.fails("CreateCommand", {**base, "EnableParameter": "true", "CommandContent": b64("echo {{}}")},
              "CmdParam.EmptyKey", 400)
    # without EnableParameter the placeholders are not checked and not reported
    out = env.call("CreateCommand", {**base, "CommandContent": b64("echo {{x y}}")})
    listed = env.call("DescribeCommands", {"CommandId": out["CommandId"]})["Commands"]["Command"]
    assert listed[0]["ParameterNames"] == {"ParameterName": []}


# ------------------------------------------------------------------------------------------------- InvokeCommand

def _create(env: Env, content: str = "echo hi", **extra: Any) -> str:
    params = {"Name": "cmd", "Type": "RunShellScript", "CommandContent": b64(content), **extra}
    return str(env.call("CreateCommand", params)["CommandId"])


def test_invoke_command_uses_command_defaults(env: Env) -> None:
    cid = _create(env, "echo hi", Timeout="300", WorkingDir="/srv", Launcher="bash", Description="dd")
    out = env.call("InvokeCommand", {"CommandId": cid, "InstanceId.1": "i-a", "InstanceId.2": "i-b"})
    assert set(out) == {"InvokeId"} and env.pokes == 1
    inv = env.db.execute("SELECT * FROM invocations WHERE invoke_id = ?", (out["InvokeId"],)).fetchone()
    assert (inv["timeout"], inv["working_dir"], inv["launcher"], inv["command_name"]) == (300, "/srv", "bash", "cmd")
    assert (inv["command_description"], inv["command_content"], inv["command_id"]) == ("dd", "echo hi", cid)
    assert [r["status"] for r in env.rows(out["InvokeId"])] == ["Pending", "Pending"]
    out = env.call("InvokeCommand", {"CommandId": cid, "InstanceId.1": "i-a", "Timeout": "30", "WorkingDir": "/x",
                                     "Username": "nobody"})
    inv = env.db.execute("SELECT * FROM invocations WHERE invoke_id = ?", (out["InvokeId"],)).fetchone()
    assert (inv["timeout"], inv["working_dir"], inv["username"]) == (30, "/x", "nobody")
    assert env.db.execute("SELECT invoke_times, timeout FROM commands WHERE command_id = ?",
                          (cid,)).fetchone()[:] == (2, 300)


def test_invoke_command_errors(env: Env) -> None:
    env.fails("InvokeCommand", {"InstanceId.1": "i-a"}, "MissingParameter.CommandId", 400)
    env.fails("InvokeCommand", {"CommandId": "c-nope", "InstanceId.1": "i-a"}, "InvalidCmdId.NotFound", 404)
    hidden = env.run("echo")["CommandId"]  # KeepCommand=false
    env.fails("InvokeCommand", {"CommandId": hidden, "InstanceId.1": "i-a"}, "InvalidCmdId.NotFound", 404)
    cid = _create(env, "echo {{a}}", EnableParameter="true")
    env.fails("InvokeCommand", {"CommandId": cid, "InstanceId.1": "i-a"}, "Parameter.MissingValue", 400)
    env.fails("InvokeCommand", {"CommandId": cid, "InstanceId.1": "i-a", "Parameters": '{"a": "1", "b": "2"}'},
              "Parameter.NotMatched", 403)
    env.fails("InvokeCommand", {"CommandId": cid, "InstanceId.1": "i-a", "Parameters": json.dumps({"a": "y" * 18500})},
              "CmdContent.ExceedLimit", 403)
    ok = env.call("InvokeCommand", {"CommandId": cid, "InstanceId.1": "i-a", "Parameters": '{"a": "1"}'})
    assert json.loads(env.db.execute("SELECT parameters FROM invocations WHERE invoke_id = ?",
                                     (ok["InvokeId"],)).fetchone()[0]) == {"a": "1"}
    plain = _create(env, "echo")
    base = {"CommandId": plain, "InstanceId.1": "i-a"}
    env.fails("InvokeCommand", {**base, "Parameters": '{"a": "1"}'}, "Parameter.Disabled", 400)
    env.fails("InvokeCommand", {**base, "Timeout": "5"}, "InvalidTimeout.ExceedLimit", 403)
    env.fails("InvokeCommand", {**base, "RepeatMode": "Sometimes"}, "InvalidRepeatMode.NotFound", 404)
    env.fails("InvokeCommand", {**base, "RepeatMode": "Period"}, "MissingParam.Frequency", 400)
    env.fails("InvokeCommand", {**base, "TerminationMode": "x"}, "InvalidTerminationMode.NotFound", 404)
    env.fails("InvokeCommand", {**base, "Launcher": "x" * 1025}, "InvalidLauncher.LengthLimitExceeded", 403)
    env.fails("InvokeCommand", {**base, "Username": "x" * 256}, "Username.ExceedLimit", 403)
    env.fails("InvokeCommand", {**base, "ContainerId": "zz"}, "InvalidContainerId.Malformed", 400)
    env.fails("InvokeCommand", {"CommandId": plain}, "MissingParam.InstanceId", 400)
    env.fails("InvokeCommand", {**base, "InstanceId.2": "i-zz"}, "InvalidInstance.NotFound", 404)
    many = {f"ResourceTag.{n}.Key": f"k{n}" for n in range(1, 12)}
    env.fails("InvokeCommand", {"CommandId": plain, **many}, "NumberExceed.ResourceTags", 400)
    env.fails("InvokeCommand", {**base, "ResourceTag.1.Key": "k"}, "InvalidResourceTag.ConflictWithInstanceIds", 400)
    # region scoping: a Hangzhou command is unknown in Beijing
    with pytest.raises(ApiError) as info:
        env.call("InvokeCommand", {"CommandId": plain, "InstanceId.1": "i-a"}, region="cn-beijing")
    assert info.value.code == "InvalidCmdId.NotFound"


def test_invoke_command_dry_run_and_period(env: Env) -> None:
    cid = _create(env)
    assert env.call("InvokeCommand", {"CommandId": cid, "InstanceId.1": "i-a", "RepeatMode": "DryRun"}) == {
        "InvokeId": ""}
    assert env.count("invocations") == 0
    out = env.call("InvokeCommand", {"CommandId": cid, "InstanceId.1": "i-a", "Frequency": "0 */20 * * * ?"})
    row = env.rows(out["InvokeId"])[0]
    assert row["status"] == "Scheduled" and row["next_run_at"] > store.now()
    assert env.call("DescribeCommands")["Commands"]["Command"][0]["InvokeTimes"] == 1


# ---------------------------------------------------------------------------------------------- DescribeCommands

def test_describe_commands_filters(env: Env) -> None:
    a = _create(env, "echo a", Name="deploy-web", Description="web tier", **{"Tag.1.Key": "t", "Tag.1.Value": "1"})
    b = _create(env, "echo b", Name="deploy-db", Description="db tier", Type="RunPowerShellScript")
    c = _create(env, "echo c", Name="cleanup", Description="nightly web job")
    other = env.call("CreateCommand", {"Name": "bj", "Type": "RunShellScript", "CommandContent": b64("x")},
                     region="cn-beijing")["CommandId"]

    def ids(**params: Any) -> list[str]:
        return [x["CommandId"] for x in env.call("DescribeCommands", params)["Commands"]["Command"]]

    assert ids() == [c, b, a]  # newest first, region scoped
    assert ids(CommandId=a) == [a]
    assert ids(CommandId=other) == []
    assert ids(Type="RunPowerShellScript") == [b]
    assert ids(Name="deploy*") == [b, a]
    assert ids(Name="*db") == [b]
    assert ids(Name="*e*") == [c, b, a]
    assert ids(Name="deploy") == []
    assert ids(Name="cleanup") == [c]
    assert ids(Description="*web*") == [c, a]
    assert ids(**{"Tag.1.Key": "t", "Tag.1.Value": "1"}) == [a]
    assert ids(**{"Tag.1.Key": "t", "Tag.1.Value": "2"}) == []
    assert ids(Provider="AlibabaCloud") == []
    env.fails("DescribeCommands", {"Type": "RunPython"}, "InvalidCommandType.NotFound", 404)
    env.fails("DescribeCommands", {"Name": "n" * 129}, "InvalidName.LengthLimitExceeded", 403)
    env.fails("DescribeCommands", {"Description": "n" * 513}, "InvalidDescription.LengthLimitExceeded", 403)
    env.fails("DescribeCommands", {"Tag.1.Key": "aliyun:x"}, "InvalidTagKey.Malformed", 400)
    listed = env.call("DescribeCommands", {"CommandId": a})["Commands"]["Command"][0]
    assert listed["CommandContent"] == b64("echo a")
    listed = env.call("DescribeCommands", {"CommandId": a, "ContentEncoding": "PlainText"})["Commands"]["Command"][0]
    assert listed["CommandContent"] == "echo a"


def test_describe_commands_paging_and_sdk(env: Env) -> None:
    made = [_create(env, f"echo {n}", Name=f"c{n}") for n in range(7)]
    newest_first = made[::-1]
    page1 = env.call("DescribeCommands", {"MaxResults": "3"})
    assert [x["CommandId"] for x in page1["Commands"]["Command"]] == newest_first[:3]
    assert page1["NextToken"]
    page2 = env.call("DescribeCommands", {"MaxResults": "3", "NextToken": page1["NextToken"]})
    page3 = env.call("DescribeCommands", {"MaxResults": "3", "NextToken": page2["NextToken"]})
    assert [x["CommandId"] for x in page2["Commands"]["Command"] + page3["Commands"]["Command"]] == newest_first[3:]
    assert page3["NextToken"] == ""
    old = env.call("DescribeCommands", {"PageNumber": "2", "PageSize": "5"})
    assert (old["TotalCount"], old["PageNumber"], old["PageSize"]) == (7, 2, 5)
    assert [x["CommandId"] for x in old["Commands"]["Command"]] == newest_first[5:]
    env.fails("DescribeCommands", {"MaxResults": "51"}, "InvalidParameter.MaxResults", 400)
    env.fails("DescribeCommands", {"PageSize": "51"}, "InvalidParam.PageSize", 400)
    body = env.call("DescribeCommands", {"MaxResults": "2"})
    m = models.DescribeCommandsResponseBody().from_map({"RequestId": "R", **body})
    cmd = m.commands.command[0]
    assert (cmd.command_id, cmd.name, cmd.type, cmd.timeout, cmd.enable_parameter) == (
        newest_first[0], "c6", "RunShellScript", 60, False)
    assert m.total_count == 7 and m.next_token == body["NextToken"]
    assert cmd.parameter_names.parameter_name == [] and cmd.tags.tag == []


# -------------------------------------------------------------------------------------- ModifyCommand / Delete

def test_modify_command(env: Env) -> None:
    cid = _create(env, "echo", Description="old", WorkingDir="/a")
    assert env.call("ModifyCommand", {"CommandId": cid, "Name": "new", "Timeout": "99", "Launcher": "sh",
                                      "CommandContent": b64("rm -rf /")}) == {}
    row = env.db.execute("SELECT * FROM commands WHERE command_id = ?", (cid,)).fetchone()
    assert (row["name"], row["timeout"], row["launcher"], row["description"], row["working_dir"], row["content"]) == (
        "new", 99, "sh", "old", "/a", "echo")
    env.call("ModifyCommand", {"CommandId": cid, "Description": "d2", "WorkingDir": "/b"})
    row = env.db.execute("SELECT * FROM commands WHERE command_id = ?", (cid,)).fetchone()
    assert (row["description"], row["working_dir"], row["name"]) == ("d2", "/b", "new")
    env.fails("ModifyCommand", {"CommandId": "c-nope", "Name": "x"}, "InvalidCmdId.NotFound", 404)
    env.fails("ModifyCommand", {"Name": "x"}, "MissingParameter.CommandId", 400)
    env.fails("ModifyCommand", {"CommandId": cid, "Name": "x" * 129}, "CmdName.ExceedLimit", 403)
    env.fails("ModifyCommand", {"CommandId": cid, "Description": "x" * 513}, "CmdDesc.ExceedLimit", 403)
    env.fails("ModifyCommand", {"CommandId": cid, "WorkingDir": "x" * 201}, "InvalidParameter.WorkingDir", 400)
    env.fails("ModifyCommand", {"CommandId": cid, "Launcher": "x" * 1025}, "InvalidLauncher.LengthLimitExceeded", 403)
    env.fails("ModifyCommand", {"CommandId": cid, "Timeout": "86401"}, "InvalidTimeout.ExceedLimit", 403)


def test_delete_command(env: Env) -> None:
    cid = _create(env, "echo", **{"Tag.1.Key": "k"})
    out = env.call("InvokeCommand", {"CommandId": cid, "InstanceId.1": "i-a"})
    env.fails("DeleteCommand", {"CommandId": cid}, "Operation.Forbidden", 403)
    env.set_row(out["InvokeId"], "i-a", status="Success", exit_code=0)
    assert env.call("DeleteCommand", {"CommandId": cid}) == {}
    assert env.count("commands") == 0 and env.count("command_tags") == 0
    env.fails("DeleteCommand", {"CommandId": cid}, "InvalidCmdId.NotFound", 404)
    env.fails("DeleteCommand", {}, "MissingParameter.CommandId", 400)
    # the execution stays visible
    inv = env.call("DescribeInvocations", {"InvokeId": out["InvokeId"]})["Invocations"]["Invocation"]
    assert inv[0]["CommandId"] == cid


# ------------------------------------------------------------------------------------------ DescribeInvocations

def test_describe_invocations_shape_and_status(env: Env) -> None:
    out = env.run("echo hi", "i-a", "i-b", Name="n", **{"Tag.1.Key": "k", "Tag.1.Value": "v"})
    iid = out["InvokeId"]
    body = env.call("DescribeInvocations", {"InvokeId": iid})
    assert (body["TotalCount"], body["PageNumber"], body["PageSize"], body["NextToken"]) == (1, 1, 10, "")
    inv = body["Invocations"]["Invocation"][0]
    assert inv["InvocationStatus"] == "Pending" and inv["InvokeStatus"] == "Running"
    assert inv["CommandContent"] == b64("echo hi") and inv["Parameters"] == "{}"
    assert inv["Timed"] is False and inv["Tags"] == {"Tag": [{"TagKey": "k", "TagValue": "v"}]}
    first = inv["InvokeInstances"]["InvokeInstance"][0]
    assert "Output" not in first and "ExitCode" not in first
    assert (first["InvocationStatus"], first["InstanceInvokeStatus"], first["Repeats"]) == ("Pending", "Running", 0)
    assert first["StartTime"] == "" and first["FinishTime"] == "" and first["StopTime"] == ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["CreationTime"])

    now = store.now()
    # the agent host claims i-a and finishes it, i-b fails
    env.set_row(iid, "i-a", status="Running", run_no=1, start_time=now, update_time=now, next_run_at=None)
    inv = env.call("DescribeInvocations", {"InvokeId": iid})["Invocations"]["Invocation"][0]
    assert inv["InvocationStatus"] == "Pending"  # i-b still pending (Pending > Running precedence)
    env.set_row(iid, "i-b", status="Running", run_no=1, start_time=now, update_time=now, next_run_at=None)
    inv = env.call("DescribeInvocations", {"InvokeId": iid})["Invocations"]["Invocation"][0]
    assert (inv["InvocationStatus"], inv["InvokeStatus"]) == ("Running", "Running")
    env.set_row(iid, "i-a", status="Success", exit_code=0, output=b"hi\n", finish_time=now + 1, update_time=now + 1)
    env.set_row(iid, "i-b", status="Failed", exit_code=3, output=b"\xffbad\n", error_code="ExitCodeNonzero",
                error_info="the command execution exit code is not zero", finish_time=now + 1, update_time=now + 1)
    body = env.call("DescribeInvocations", {"InvokeId": iid, "IncludeOutput": "true"})
    inv = body["Invocations"]["Invocation"][0]
    # legacy: a non-zero exit still ran to its end (Finished per instance and overall, as the documented sample)
    assert (inv["InvocationStatus"], inv["InvokeStatus"]) == ("PartialFailed", "Finished")
    a, b = inv["InvokeInstances"]["InvokeInstance"]
    assert (a["InstanceId"], a["ExitCode"], a["Output"], a["InstanceInvokeStatus"]) == ("i-a", 0, b64("hi\n"),
                                                                                         "Finished")
    assert (b["ExitCode"], b["ErrorCode"], b["Output"]) == (3, "ExitCodeNonzero",
                                                            base64.b64encode(b"\xffbad\n").decode())
    plain = env.call("DescribeInvocations", {"InvokeId": iid, "IncludeOutput": "true", "ContentEncoding": "PlainText"})
    inv = plain["Invocations"]["Invocation"][0]
    assert inv["CommandContent"] == "echo hi"
    assert inv["InvokeInstances"]["InvokeInstance"][1]["Output"] == "\ufffdbad\n"

    m = models.DescribeInvocationsResponseBody().from_map({"RequestId": "R", **body})
    mi = m.invocations.invocation[0]
    assert (mi.invoke_id, mi.command_id, mi.command_name, mi.invocation_status, mi.parameters) == (
        iid, out["CommandId"], "n", "PartialFailed", "{}")
    assert mi.tags.tag[0].tag_key == "k"
    ii = mi.invoke_instances.invoke_instance[1]
    assert (ii.instance_id, ii.exit_code, ii.error_code, ii.repeats, ii.dropped, ii.timed) == (
        "i-b", 3, "ExitCodeNonzero", 1, 0, False)
    assert ii.finish_time and ii.start_time and ii.update_time
    assert m.to_map()["Invocations"]["Invocation"][0]["InvokeInstances"]["InvokeInstance"][0]["Output"] == b64("hi\n")


def test_legacy_status_of_a_nonzero_exit(env: Env) -> None:
    """The documented sample: the only instance exited non-zero -> InvocationStatus Failed, InvokeStatus Finished."""
    out = env.run("exit 1", "i-a")
    now = store.now()
    env.set_row(out["InvokeId"], "i-a", status="Failed", exit_code=1, run_no=1, start_time=now, finish_time=now + 1,
                update_time=now + 1, error_code="ExitCodeNonzero", next_run_at=None)
    inv = env.call("DescribeInvocations", {"InvokeId": out["InvokeId"]})["Invocations"]["Invocation"][0]
    assert (inv["InvocationStatus"], inv["InvokeStatus"]) == ("Failed", "Finished")
    (one,) = inv["InvokeInstances"]["InvokeInstance"]
    assert (one["InvocationStatus"], one["InstanceInvokeStatus"], one["ExitCode"]) == ("Failed", "Finished", 1)
    results = env.call("DescribeInvocationResults", {"InvokeId": out["InvokeId"]})
    (record,) = results["Invocation"]["InvocationResults"]["InvocationResult"]
    assert (record["InvocationStatus"], record["InvokeRecordStatus"]) == ("Failed", "Finished")
    assert [i["InvokeId"] for i in env.call("DescribeInvocations", {"InvokeStatus": "Finished"})[
        "Invocations"]["Invocation"]] == [out["InvokeId"]]
    assert env.call("DescribeInvocations", {"InvokeStatus": "PartialFailed"})["Invocations"]["Invocation"] == []


def test_describe_invocations_instance_filter_and_include_output(env: Env) -> None:
    out = env.run("echo", "i-a", "i-b")
    env.set_row(out["InvokeId"], "i-a", status="Success", exit_code=0)
    env.set_row(out["InvokeId"], "i-b", status="Failed", exit_code=1)
    other = env.run("echo", "i-b")
    env.fails("DescribeInvocations", {"IncludeOutput": "true"}, "InvalidParameter.IncludeOutput", 400)
    body = env.call("DescribeInvocations", {"InstanceId": "i-a", "IncludeOutput": "true"})
    invs = body["Invocations"]["Invocation"]
    assert [i["InvokeId"] for i in invs] == [out["InvokeId"]]
    assert [x["InstanceId"] for x in invs[0]["InvokeInstances"]["InvokeInstance"]] == ["i-a"]
    assert invs[0]["InvocationStatus"] == "Success"  # derived from i-a alone
    invs = env.call("DescribeInvocations", {"InstanceId": "i-b"})["Invocations"]["Invocation"]
    assert [i["InvokeId"] for i in invs] == [other["InvokeId"], out["InvokeId"]]
    assert invs[1]["InvocationStatus"] == "Failed"


def test_describe_invocations_filters(env: Env) -> None:
    cid = _create(env, "dir", Name="win", Type="RunBatScript")
    env.instance("i-w", os_type="windows")
    once = env.run("echo", "i-a", Name="alpha", **{"Tag.1.Key": "team", "Tag.1.Value": "a"})
    period = env.run("echo", "i-a", Frequency="rate(1h)")
    reboot = env.call("InvokeCommand", {"CommandId": cid, "InstanceId.1": "i-w", "RepeatMode": "EveryReboot"})
    env.set_row(once["InvokeId"], "i-a", status="Success", exit_code=0)

    def ids(**params: Any) -> list[str]:
        return [x["InvokeId"] for x in env.call("DescribeInvocations", params)["Invocations"]["Invocation"]]

    live = {"Timed": "true"}  # repeating executions that will run again are only listed with Timed=true
    assert ids() == [once["InvokeId"]]
    assert ids(**live) == [reboot["InvokeId"], period["InvokeId"]]
    assert ids(CommandId=cid, **live) == [reboot["InvokeId"]]
    assert ids(CommandName="alpha") == [once["InvokeId"]]
    assert ids(CommandName="alpha", InstanceId="i-a", **live) == [period["InvokeId"]]  # ignored
    assert ids(CommandType="RunBatScript", **live) == [reboot["InvokeId"]]
    assert ids(CommandType="RunBatScript") == []
    assert ids(RepeatMode="Period", **live) == [period["InvokeId"]]
    assert ids(RepeatMode="Period", InstanceId="i-a") == [once["InvokeId"]]  # ignored
    assert ids(InvokeStatus="Finished") == [once["InvokeId"]]
    assert ids(InvokeStatus="Success") == [once["InvokeId"]]
    assert ids(InvokeStatus="Scheduled", **live) == [reboot["InvokeId"], period["InvokeId"]]
    assert ids(InvokeStatus="Running", **live) == [reboot["InvokeId"], period["InvokeId"]]
    assert ids(InvokeStatus="Running") == []
    assert ids(Timed="false") == [once["InvokeId"]]
    assert ids(**{"Tag.1.Key": "team", "Tag.1.Value": "a"}) == [once["InvokeId"]]
    assert ids(**{"Tag.1.Key": "team"}) == [once["InvokeId"]]
    assert ids(**{"Tag.1.Key": "team", "Tag.1.Value": "b"}) == []
    assert ids(InvokeId="t-nope") == []
    assert env.call("DescribeInvocations", {}, region="cn-beijing")["Invocations"]["Invocation"] == []
    inv = env.call("DescribeInvocations", {"InvokeId": period["InvokeId"], **live})["Invocations"]["Invocation"][0]
    assert (inv["Timed"], inv["RepeatMode"], inv["Frequency"], inv["InvocationStatus"], inv["InvokeStatus"]) == (
        True, "Period", "rate(1h)", "Scheduled", "Running")
    assert inv["InvokeInstances"]["InvokeInstance"][0]["Timed"] is True
    env.fails("DescribeInvocations", {"Tag.1.Key": "acs:k"}, "InvalidTagKey.Malformed", 400)
    env.fails("DescribeInvocations", {"PageNumber": "0"}, "InvalidParam.PageNumber", 400)
    env.fails("DescribeInvocations", {"NextToken": "garbage"}, "InvalidParameter.NextToken", 400)


def test_describe_invocations_timed_default_false(env: Env) -> None:
    """Ref §2.4 Timed: true = executions that will run again; false, the documented default, = Once executions and
    repeating ones that are cancelled, stopped or finished. An InvokeId lookup is not exempt."""
    once = env.run("echo once")["InvokeId"]
    period = env.run("echo", Frequency="rate(1h)")["InvokeId"]
    stopped = env.run("echo", Frequency="rate(1h)")["InvokeId"]
    env.call("StopInvocation", {"InvokeId": stopped})
    reboot_once = env.run("echo", RepeatMode="NextRebootOnly")["InvokeId"]
    env.set_row(reboot_once, "i-a", status="Success", exit_code=0, run_no=1)
    every_reboot = env.run("echo", RepeatMode="EveryReboot")["InvokeId"]

    def listed(**params: Any) -> list[tuple[str, bool]]:
        body = env.call("DescribeInvocations", params)["Invocations"]["Invocation"]
        for inv in body:  # the field agrees with the filter, per invocation and per instance
            assert inv["Timed"] is any(x["Timed"] for x in inv["InvokeInstances"]["InvokeInstance"])
        return [(x["InvokeId"], x["Timed"]) for x in body]

    not_timed = [(reboot_once, False), (stopped, False), (once, False)]
    assert listed() == not_timed
    assert listed(Timed="false") == not_timed
    assert listed(Timed="true") == [(every_reboot, True), (period, True)]
    assert listed(InvokeId=period) == []
    assert listed(InvokeId=period, Timed="true") == [(period, True)]
    assert listed(InvokeId=stopped) == [(stopped, False)]
    assert listed(InvokeId=stopped, Timed="true") == []
    assert listed(InstanceId="i-a", InvokeId=every_reboot, Timed="true") == [(every_reboot, True)]
    assert listed(InstanceId="i-a", MaxResults="50")[0] == (reboot_once, False)
    body = env.call("DescribeInvocations", {"Timed": "true", "IncludeOutput": "true", "InvokeId": period})
    assert body["TotalCount"] == 1
    env.fails("DescribeInvocations", {"Timed": "maybe"}, "InvalidParameter.Timed", 400)


def test_describe_invocations_paging(env: Env) -> None:
    made = [env.run(f"echo {n}")["InvokeId"] for n in range(5)][::-1]
    seen: list[str] = []
    token = ""
    while True:
        params = {"MaxResults": "2", **({"NextToken": token} if token else {})}
        body = env.call("DescribeInvocations", params)
        seen += [x["InvokeId"] for x in body["Invocations"]["Invocation"]]
        token = body["NextToken"]
        if not token:
            break
    assert seen == made
    body = env.call("DescribeInvocations", {"PageNumber": "3", "PageSize": "2"})
    assert [x["InvokeId"] for x in body["Invocations"]["Invocation"]] == made[4:]
    assert body["TotalCount"] == 5
    # paging also applies after the status filters
    for iid in made[:3]:
        env.set_row(iid, "i-a", status="Success", exit_code=0)
    body = env.call("DescribeInvocations", {"InvokeStatus": "Success", "MaxResults": "2"})
    assert [x["InvokeId"] for x in body["Invocations"]["Invocation"]] == made[:2] and body["NextToken"]
    body = env.call("DescribeInvocations", {"InvokeStatus": "Success", "MaxResults": "2",
                                            "NextToken": body["NextToken"]})
    assert [x["InvokeId"] for x in body["Invocations"]["Invocation"]] == made[2:3] and body["NextToken"] == ""


# ------------------------------------------------------------------------------------ DescribeInvocationResults

def test_describe_invocation_results_shape_and_order(env: Env) -> None:
    first = env.run("echo 1", "i-b", "i-a", **{"Tag.1.Key": "k", "Tag.1.Value": "v"})
    second = env.run("echo 2", "i-a", Username="admin", TerminationMode="Process")
    now = store.now()
    env.set_row(first["InvokeId"], "i-b", status="Success", exit_code=0, output=b"one", run_no=1, start_time=now,
                finish_time=now + 2)
    env.set_row(first["InvokeId"], "i-a", status="Timeout", exit_code=137, output=b"", run_no=1, start_time=now,
                finish_time=now + 99, error_code="ExecutionTimeout", dropped=5)
    body = env.call("DescribeInvocationResults", {})
    assert set(body) == {"Invocation"}
    wrapper = body["Invocation"]
    assert (wrapper["TotalCount"], wrapper["PageNumber"], wrapper["PageSize"], wrapper["NextToken"]) == (3, 1, 10, "")
    results = wrapper["InvocationResults"]["InvocationResult"]
    assert [(r["InvokeId"], r["InstanceId"]) for r in results] == [
        (second["InvokeId"], "i-a"), (first["InvokeId"], "i-b"), (first["InvokeId"], "i-a")]
    pending, ok, timeout = results
    assert (pending["InvocationStatus"], pending["InvokeRecordStatus"], pending["Output"]) == ("Pending", "Running", "")
    assert (pending["Username"], pending["TerminationMode"], pending["FinishedTime"]) == ("admin", "Process", "")
    assert "ExitCode" not in pending
    assert (ok["Output"], ok["ExitCode"], ok["InvokeRecordStatus"], ok["Repeats"]) == (b64("one"), 0, "Finished", 1)
    assert ok["FinishedTime"] == store.iso(now + 2) and ok["StartTime"] == store.iso(now)
    assert ok["Tags"] == {"Tag": [{"TagKey": "k", "TagValue": "v"}]}
    assert (timeout["InvokeRecordStatus"], timeout["Dropped"], timeout["ErrorCode"]) == (
        "Failed", 5, "ExecutionTimeout")
    assert timeout["FinishedTime"] == store.iso(now + 60)  # StartTime + Timeout (ref §2.5)
    plain = env.call("DescribeInvocationResults", {"InvokeId": first["InvokeId"], "ContentEncoding": "PlainText"})
    assert plain["Invocation"]["InvocationResults"]["InvocationResult"][0]["Output"] == "one"

    m = models.DescribeInvocationResultsResponseBody().from_map({"RequestId": "R", **body})
    assert m.invocation.total_count == 3
    r = m.invocation.invocation_results.invocation_result[1]
    assert (r.invoke_id, r.instance_id, r.exit_code, r.output, r.finished_time, r.invoke_record_status) == (
        first["InvokeId"], "i-b", 0, b64("one"), store.iso(now + 2), "Finished")
    assert r.tags.tag[0].tag_value == "v" and r.command_id == first["CommandId"]


def test_describe_invocation_results_filters_and_paging(env: Env) -> None:
    first = env.run("echo 1", "i-a", "i-b")
    second = env.run("echo 2", "i-a")
    env.set_row(first["InvokeId"], "i-a", status="Success", exit_code=0)
    env.set_row(first["InvokeId"], "i-b", status="Cancelled")

    def keys(**params: Any) -> list[tuple[str, str]]:
        res = env.call("DescribeInvocationResults", params)["Invocation"]["InvocationResults"]["InvocationResult"]
        return [(r["InvokeId"], r["InstanceId"]) for r in res]

    assert keys(InvokeId=first["InvokeId"]) == [(first["InvokeId"], "i-a"), (first["InvokeId"], "i-b")]
    assert keys(InstanceId="i-a") == [(second["InvokeId"], "i-a"), (first["InvokeId"], "i-a")]
    assert keys(CommandId=second["CommandId"]) == [(second["InvokeId"], "i-a")]
    assert keys(InvokeRecordStatus="Finished") == [(first["InvokeId"], "i-a")]
    assert keys(InvokeRecordStatus="Stopped") == [(first["InvokeId"], "i-b")]
    assert keys(InvokeRecordStatus="Running") == [(second["InvokeId"], "i-a")]
    assert keys(**{"Tag.1.Key": "none"}) == []
    page1 = env.call("DescribeInvocationResults", {"MaxResults": "2"})["Invocation"]
    assert len(page1["InvocationResults"]["InvocationResult"]) == 2 and page1["NextToken"]
    page2 = env.call("DescribeInvocationResults", {"MaxResults": "2", "NextToken": page1["NextToken"]})["Invocation"]
    assert [(r["InvokeId"], r["InstanceId"]) for r in page2["InvocationResults"]["InvocationResult"]] == [
        (first["InvokeId"], "i-b")]
    assert page2["NextToken"] == ""
    old = env.call("DescribeInvocationResults", {"PageNumber": "2", "PageSize": "1"})["Invocation"]
    assert old["TotalCount"] == 3 and old["PageNumber"] == 2
    assert [r["InstanceId"] for r in old["InvocationResults"]["InvocationResult"]] == ["i-a"]
    env.fails("DescribeInvocationResults", {"MaxResults": "0"}, "InvalidParameter.MaxResults", 400)


def test_describe_invocation_results_history(env: Env) -> None:
    out = env.run("date", "i-a", "i-b", Frequency="rate(2m)")
    iid = out["InvokeId"]
    now = store.now()
    for run_no, code in ((1, 0), (2, 1)):
        env.db.execute("INSERT INTO run_history(invoke_id, instance_id, run_no, status, exit_code, output,"
                       " start_time, finish_time) VALUES (?, 'i-a', ?, ?, ?, ?, ?, ?)",
                       (iid, run_no, "Success" if code == 0 else "Failed", code, f"run{run_no}".encode(),
                        now + run_no, now + run_no + 1))
    env.set_row(iid, "i-a", status="Scheduled", run_no=2, exit_code=1, output=b"run2")
    body = env.call("DescribeInvocationResults", {"InvokeId": iid, "IncludeHistory": "true"})["Invocation"]
    results = body["InvocationResults"]["InvocationResult"]
    assert [(r["InstanceId"], r["Repeats"], r["InvocationStatus"]) for r in results] == [
        ("i-a", 2, "Scheduled"), ("i-a", 2, "Failed"), ("i-a", 1, "Success"), ("i-b", 0, "Scheduled")]
    assert results[2]["Output"] == b64("run1") and results[2]["ExitCode"] == 0
    assert results[1]["InvokeRecordStatus"] == "Finished"
    assert body["TotalCount"] == 4
    # without IncludeHistory, or without InvokeId, only the current rows
    assert len(env.call("DescribeInvocationResults", {"InvokeId": iid})["Invocation"]["InvocationResults"][
        "InvocationResult"]) == 2
    assert len(env.call("DescribeInvocationResults", {"IncludeHistory": "true"})["Invocation"]["InvocationResults"][
        "InvocationResult"]) == 2
    # Once invocations ignore IncludeHistory
    once = env.run("echo")["InvokeId"]
    assert len(env.call("DescribeInvocationResults", {"InvokeId": once, "IncludeHistory": "true"})["Invocation"][
        "InvocationResults"]["InvocationResult"]) == 1


# ----------------------------------------------------------------------------------------------- StopInvocation

def test_stop_invocation(env: Env) -> None:
    env.instance("i-c")
    out = env.run("sleep 100", "i-a", "i-b", "i-c")
    iid = out["InvokeId"]
    now = store.now()
    env.set_row(iid, "i-b", status="Running", run_no=1, start_time=now, next_run_at=None)
    env.set_row(iid, "i-c", status="Success", exit_code=0)
    pokes = env.pokes
    assert env.call("StopInvocation", {"InvokeId": iid, "InstanceId.1": "i-a"}) == {}
    assert env.pokes == pokes + 1
    rows = {r["instance_id"]: r for r in env.rows(iid)}
    assert rows["i-a"]["status"] == "Cancelled" and rows["i-a"]["stop_time"] is not None
    assert rows["i-a"]["next_run_at"] is None
    assert rows["i-b"]["status"] == "Running"
    assert env.db.execute("SELECT stopped_at FROM invocations").fetchone()[0] is None  # partial stop
    env.call("StopInvocation", {"InvokeId": iid})
    rows = {r["instance_id"]: r for r in env.rows(iid)}
    assert rows["i-b"]["status"] == "Stopping" and rows["i-b"]["stop_time"] is not None
    assert rows["i-c"]["status"] == "Success" and rows["i-c"]["stop_time"] is None
    assert env.db.execute("SELECT stopped_at FROM invocations").fetchone()[0] is not None
    inv = env.call("DescribeInvocations", {"InvokeId": iid})["Invocations"]["Invocation"][0]
    assert (inv["InvocationStatus"], inv["InvokeStatus"]) == ("Stopping", "Stopping")
    assert inv["InvokeInstances"]["InvokeInstance"][0]["StopTime"] != ""
    # the agent host finishes the stop
    env.set_row(iid, "i-b", status="Terminated", error_code="ExecutionInterrupted")
    inv = env.call("DescribeInvocations", {"InvokeId": iid})["Invocations"]["Invocation"][0]
    assert inv["InvocationStatus"] == "Success"
    assert [x["InstanceInvokeStatus"] for x in inv["InvokeInstances"]["InvokeInstance"]] == [
        "Stopped", "Stopped", "Finished"]


def test_stop_invocation_scheduled_and_errors(env: Env) -> None:
    out = env.run("echo", "i-a", Frequency="rate(5m)")
    env.call("StopInvocation", {"InvokeId": out["InvokeId"]})
    row = env.rows(out["InvokeId"])[0]
    assert (row["status"], row["next_run_at"]) == ("Cancelled", None)
    inv = env.call("DescribeInvocations", {"InvokeId": out["InvokeId"]})["Invocations"]["Invocation"][0]
    assert (inv["InvocationStatus"], inv["InvokeStatus"], inv["Timed"]) == ("Stopped", "Stopped", False)
    env.fails("StopInvocation", {}, "MissingParameter.InvokeId", 400)
    env.fails("StopInvocation", {"InvokeId": "t-nope"}, "InvalidInvokeId.NotFound", 404)
    env.fails("StopInvocation", {"InvokeId": out["InvokeId"], "InstanceId.1": "i-b"},
              "InvalidInstanceId.NotFound", 404)
    many = {f"InstanceId.{n}": "i-a" for n in range(1, 52)}
    env.fails("StopInvocation", {"InvokeId": out["InvokeId"], **many}, "InstanceIds.ExceedLimit", 403)
    with pytest.raises(ApiError) as info:
        env.call("StopInvocation", {"InvokeId": out["InvokeId"]}, region="cn-beijing")
    assert info.value.code == "InvalidInvokeId.NotFound"


def test_registry_flags() -> None:
    flags = {name: (ACTIONS[name].mutating, ACTIONS[name].client_token) for name in (
        "RunCommand", "CreateCommand", "InvokeCommand", "DescribeCommands", "ModifyCommand", "DeleteCommand",
        "DescribeInvocations", "DescribeInvocationResults", "StopInvocation")}
    assert flags == {
        "RunCommand": (True, True), "CreateCommand": (True, True), "InvokeCommand": (True, True),
        "DescribeCommands": (False, False), "ModifyCommand": (True, False), "DeleteCommand": (True, False),
        "DescribeInvocations": (False, False), "DescribeInvocationResults": (False, False),
        "StopInvocation": (True, False),
    }
    assert cmds.CONTENT_LIMIT == 24576


def test_describe_reports_default_username_and_working_dir(env: Env) -> None:
    out = env.run("echo hi", "i-a")
    inv = env.call("DescribeInvocations", {"InvokeId": out["InvokeId"]})["Invocations"]["Invocation"][0]
    assert (inv["Username"], inv["WorkingDir"]) == ("root", "/root")
    res = env.call("DescribeInvocationResults", {"InvokeId": out["InvokeId"]})
    assert res["Invocation"]["InvocationResults"]["InvocationResult"][0]["Username"] == "root"
    given = env.call("RunCommand", {"Type": "RunShellScript", "CommandContent": "id", "InstanceId.1": "i-a",
                                    "Username": "nobody", "WorkingDir": "/tmp"})
    inv = env.call("DescribeInvocations", {"InvokeId": given["InvokeId"]})["Invocations"]["Invocation"][0]
    assert (inv["Username"], inv["WorkingDir"]) == ("nobody", "/tmp")
