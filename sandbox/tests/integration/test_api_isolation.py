"""Instance isolation (namespaces mode): private filesystem, hostname, PID space; files survive a reboot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sandbox.tests.integration.sandbox_fixture import (
    add_instances,
    describe_instances,
    models,
    output_of,
    run_one,
    unique,
    wait_agent_ready,
    wait_for,
)


@pytest.fixture(autouse=True)
def _namespaces_only(sandbox_info: dict[str, Any]) -> None:
    if sandbox_info["isolation"] == "process":
        pytest.skip("the sandbox runs with --isolation process (no namespaces on this host)")


@pytest.fixture()
def pair(sandbox_info: dict[str, Any], client: Any) -> list[str]:
    ids = add_instances(sandbox_info, 2)
    for iid in ids:
        wait_agent_ready(client, iid)
    return ids


def _ok(row: dict[str, Any]) -> str:
    assert row["InvocationStatus"] == "Success", row
    return output_of(row).decode()


def test_files_are_private_and_survive_reboot(client: Any, pair: list[str]) -> None:
    a, b = pair
    path = f"/root/iso-{unique()}.txt"
    var_path = f"/var/tmp/iso-{unique()}.txt"
    assert _ok(run_one(client, f"echo secret-a > {path}; echo v > {var_path}; cat {path}", a)) == "secret-a\n"
    check = f"if [ -e {path} ] || [ -e {var_path} ]; then echo present; else echo absent; fi"
    assert _ok(run_one(client, check, b)) == "absent\n"
    assert not Path(path).exists(), "a file written inside an instance reached the host"
    assert not Path(var_path).exists(), "a file written inside an instance reached the host"
    assert _ok(run_one(client, f"cat {path}", a)) == "secret-a\n"  # persists between commands

    m = models()
    client.reboot_instance(m.RebootInstanceRequest(instance_id=a))
    wait_for(lambda: describe_instances(client, [a])[0]["Status"] == "Running", 15, 0.2, "instance Running")
    wait_agent_ready(client, a)
    assert _ok(run_one(client, f"cat {path} {var_path}", a)) == "secret-a\nv\n"
    assert _ok(run_one(client, check, b)) == "absent\n"


def test_tmp_is_private(client: Any, pair: list[str]) -> None:
    a, b = pair
    name = f"/tmp/iso-{unique()}"
    _ok(run_one(client, f"touch {name}", a))
    assert _ok(run_one(client, f"[ -e {name} ] && echo yes || echo no", b)) == "no\n"
    assert not Path(name).exists()


def test_hostname_matches_describe_instances(client: Any, pair: list[str]) -> None:
    described = {i["InstanceId"]: i for i in describe_instances(client, pair)}
    names = {}
    for iid in pair:
        names[iid] = _ok(run_one(client, "hostname", iid)).strip()
        assert names[iid] == described[iid]["HostName"], (names[iid], described[iid])
    assert names[pair[0]] != names[pair[1]]
    assert os.uname().nodename not in names.values()


def test_private_pid_space(client: Any, pair: list[str]) -> None:
    a, _ = pair
    out = _ok(run_one(client, "echo $$; ls -d /proc/[0-9]* | wc -l", a))
    shell_pid, count = out.split()
    assert int(shell_pid) < 1000, f"shell PID {shell_pid} is not from a private PID namespace"
    assert int(count) < 30, f"{count} processes visible: not a private PID namespace"
    # the test runner itself is invisible from inside
    mine = os.getpid()
    if mine > 1000:
        assert _ok(run_one(client, f"[ -d /proc/{mine} ] && echo visible || echo hidden", a)) == "hidden\n"


def test_state_dir_hidden_inside_instances(sandbox_info: dict[str, Any], client: Any, pair: list[str]) -> None:
    db = f"{sandbox_info['state_dir']}/sandbox.db"
    assert Path(db).exists()
    out = _ok(
        run_one(client, f"[ -e {db} ] && echo visible || echo hidden; ls {sandbox_info['state_dir']} | wc -l", pair[0])
    )
    assert out.split()[0] == "hidden", out


def test_state_dir_is_its_owners_alone(sandbox_info: dict[str, Any]) -> None:
    """The keys are in sandbox.json, sandbox.db and serve's ready line: nobody else may list or read them."""
    state = Path(sandbox_info["state_dir"])
    assert state.stat().st_mode & 0o777 == 0o700
    for name in ("sandbox.db", "sandbox.json"):
        assert (state / name).stat().st_mode & 0o077 == 0, name
