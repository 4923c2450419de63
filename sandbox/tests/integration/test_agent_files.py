"""File writes (SendFile) by the agent host: written from the agent host through the instance's root
(sandbox/filewrite.py), and the process-based fallback (isolation.FILE_WRAPPER, SANDBOX_FILE_WRITES=wrapper).
The basic Success / FileAlreadyExists / unknown account checks in both modes are test_agent_host.test_send_file."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.tests.integration.test_agent_host import NAMESPACES, Sandbox, needs_namespaces, sandbox, wait_until

# Inside an instance, a `mktemp` that always fails: the wrapper needs it, the direct write does not.
_BREAK_MKTEMP = "printf '#!/bin/sh\\nexit 1\\n' > /usr/local/bin/mktemp && chmod 755 /usr/local/bin/mktemp"


@pytest.fixture(scope="module")
def ns3() -> Iterator[Sandbox]:
    if not NAMESPACES:
        pytest.skip("namespaces isolation needs root + overlayfs")
    with sandbox("namespaces", instances=3) as box:
        yield box


def _ok(box: Sandbox, script: str, iid: str) -> bytes:
    row = box.run(script, iid)
    assert row["status"] == "Success", (row["status"], row["error_code"], row["output"])
    return bytes(row["output"])


def _send(box: Sandbox, iid: str, target: str, name: str, content: bytes = b"x", **kw: object) -> tuple[str, str]:
    row = box.wait_file(box.send_file([iid], name, target, content, **kw))  # type: ignore[arg-type]
    return row["status"], row["error_code"]


@needs_namespaces
def test_symlinks_inside_the_instance_never_lead_out_of_it(ns3: Sandbox) -> None:
    iid = ns3.instances[0]
    tag = uuid.uuid4().hex[:8]
    host_dir = Path(f"/var/tmp/sandbox-escape-{tag}")  # exists on the host, not in the instance
    host_dir.mkdir()
    (host_dir / "victim").write_text("host file")
    base = f"/opt/links-{tag}"
    try:
        _ok(ns3, f"mkdir -p {base} && ln -s {host_dir} {base}/abs && ln -s ../../../../../..{host_dir} {base}/rel"
                 f" && ln -s {host_dir}/victim {base}/name && ln -s /proc/self/root {base}/magic", iid)
        assert _send(ns3, iid, f"{base}/abs/sub", "a", b"via abs") == ("Success", "")
        assert _send(ns3, iid, f"{base}/rel/sub", "r", b"via rel") == ("Success", "")
        assert _send(ns3, iid, base, "name", b"not followed") == ("Failed", "FileAlreadyExists")
        assert _send(ns3, iid, base, "name", b"replaced", overwrite=True) == ("Success", "")
        # what the instance sees: its own directory behind both links, the link at the name replaced by the file
        out = _ok(ns3, f"cat {host_dir}/sub/a {host_dir}/sub/r; test -L {base}/name || cat {base}/name", iid)
        assert out == b"via absvia relreplaced"
        # the host's directory is untouched; the files are in the instance's upper layer
        assert sorted(os.listdir(host_dir)) == ["victim"] and (host_dir / "victim").read_text() == "host file"
        upper = ns3.dir / "instances" / iid / "upper"
        assert (upper / str(host_dir).lstrip("/") / "sub" / "a").read_bytes() == b"via abs"
        # a /proc magic link is refused, as a path the write cannot resolve
        assert _send(ns3, iid, f"{base}/magic/etc", "m") == ("Failed", "FilePathInvalid")
        assert not Path("/etc/m").exists()
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)


@needs_namespaces
def test_owner_group_and_mode_use_the_instance_s_own_accounts(ns3: Sandbox) -> None:
    a, b = ns3.instances[0], ns3.instances[1]
    tag = uuid.uuid4().hex[:6]
    user, group = f"fw{tag}", f"fg{tag}"
    _ok(ns3, f"echo '{user}:x:43210:43210::/nonexistent:/bin/false' >> /etc/passwd"
             f" && echo '{group}:x:54321:' >> /etc/group", a)
    target = f"/srv/owners-{tag}"
    assert _send(ns3, a, target, "f", b"owned", owner=user, group=group, mode="0751") == ("Success", "")
    assert _ok(ns3, f"stat -c '%a %u %g %U %G' {target}/f; stat -c '%a %U %G' {target}", a) == \
        f"751 43210 54321 {user} {group}\n755 root root\n".encode()
    # the other instance has no such accounts (nor has the host)
    assert _send(ns3, b, target, "f", owner=user) == ("Failed", "AccountNotExists")
    assert _send(ns3, b, target, "f", group=group) == ("Failed", "UserGroupNotExists")


@needs_namespaces
def test_writes_need_no_process_inside_the_instance(ns3: Sandbox) -> None:
    iid = ns3.instances[2]
    _ok(ns3, _BREAK_MKTEMP, iid)
    try:
        assert _send(ns3, iid, "/srv/noproc", "f", b"direct") == ("Success", "")
        assert _ok(ns3, "cat /srv/noproc/f", iid) == b"direct"
    finally:
        _ok(ns3, "rm -f /usr/local/bin/mktemp", iid)


def _burst(box: Sandbox, iid: str, target: str, count: int) -> list[str]:
    """`count` SendFile tasks of 20 KB each to one instance, queued at once (one file per task)."""
    return [box.send_file([iid], f"part{n:03d}", target, bytes([n]) * 20000, overwrite=True) for n in range(count)]


@needs_namespaces
def test_instance_stop_during_writes(ns3: Sandbox) -> None:
    (iid,) = ns3.add_instances(1)
    target = "/srv/stop-burst"
    tasks = _burst(ns3, iid, target, 60)
    ns3.set_instance(iid, "status = 'Stopped'")
    rows = [ns3.wait_file(t) for t in tasks]
    outcomes = {(r["status"], r["error_code"]) for r in rows}
    assert outcomes <= {("Success", ""), ("Aborted", "InstanceNotRunning")}, outcomes
    wait_until(lambda: ns3.init_pid(iid) is None, 5, "the init to go")
    ns3.set_instance(iid, "status = 'Running', boot_count = boot_count + 1")
    wait_until(lambda: ns3.init_pid(iid) is not None, 15, "the init to start again")
    # every write reported Success is whole after the restart, and no temporary file is left behind
    done = [f"part{n:03d}" for n, r in enumerate(rows) if r["status"] == "Success"]
    listing = _ok(ns3, f"mkdir -p {target} && cd {target} && ls -A && cat {' '.join(done)} </dev/null | wc -c", iid)
    names = [n.decode() for n in listing.split()[:-1]]
    assert [n for n in names if n.startswith(".sandbox-send")] == []
    assert set(done) <= set(names)
    assert int(listing.split()[-1]) == 20000 * len(done)
    assert _send(ns3, iid, target, "after", b"again", overwrite=True) == ("Success", "")


@needs_namespaces
def test_restart_during_writes_then_writes_go_to_the_new_namespace(ns3: Sandbox) -> None:
    (iid,) = ns3.add_instances(1)
    target = "/srv/reboot-burst"
    assert _send(ns3, iid, target, "before", b"kept") == ("Success", "")
    old_init = ns3.init_pid(iid)
    tasks = _burst(ns3, iid, target, 60)
    ns3.set_instance(iid, "boot_count = boot_count + 1")
    rows = [ns3.wait_file(t, timeout=30) for t in tasks]
    outcomes = {(r["status"], r["error_code"]) for r in rows}
    assert outcomes <= {("Success", ""), ("Aborted", "InstanceNotRunning")}, outcomes
    wait_until(lambda: (p := ns3.init_pid(iid)) is not None and p != old_init, 15, "a new init")
    assert _send(ns3, iid, target, "after", b"new root", overwrite=True) == ("Success", "")
    assert _ok(ns3, f"cat {target}/before {target}/after; ls -A {target} | grep -c '^part'", iid) == \
        f"keptnew root{sum(r['status'] == 'Success' for r in rows)}\n".encode()


@pytest.mark.parametrize("mode", ["process", pytest.param("namespaces", marks=needs_namespaces)])
def test_wrapper_fallback(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SANDBOX_FILE_WRITES=wrapper (what a kernel without openat2 gets): the same results, through the wrapper."""
    monkeypatch.setenv("SANDBOX_FILE_WRITES", "wrapper")
    with sandbox(mode, instances=1) as box:
        iid = box.instances[0]
        target = f"/var/tmp/sandbox-wrapper-{uuid.uuid4().hex[:8]}/sub"
        try:
            assert _send(box, iid, target, "f", b"one", mode="0640", group="nogroup") == ("Success", "")
            assert _ok(box, f"stat -c '%a %U %G' {target}/f; cat {target}/f", iid) == b"640 root nogroup\none"
            assert _send(box, iid, target, "f", b"two") == ("Failed", "FileAlreadyExists")
            assert _send(box, iid, target, "f", owner="no-such-user-x") == ("Failed", "AccountNotExists")
            if mode == "namespaces":  # proof that the wrapper wrote: it needs the instance's mktemp
                _ok(box, _BREAK_MKTEMP, iid)
                assert _send(box, iid, target, "g") == ("Failed", "FileCreateFail")
        finally:
            shutil.rmtree(Path(target).parent, ignore_errors=True)
