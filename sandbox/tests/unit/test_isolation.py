"""isolation.py: detection, the tree kill, the output tail, small parsing helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from sandbox import isolation, store
from sandbox.tests.proc_helpers import pids_matching

ROOT = os.geteuid() == 0


# ---------------------------------------------------------------------------------------------------------------
# detect_isolation


def test_process_is_always_possible():
    assert isolation.detect_isolation("process") == "process"


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        isolation.detect_isolation("containers")


def test_non_root_auto_falls_back_and_namespaces_explains(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert isolation.detect_isolation("auto") == "process"
    with pytest.raises(RuntimeError, match="needs root"):
        isolation.detect_isolation("namespaces")


def test_missing_tools_auto_falls_back(monkeypatch):
    monkeypatch.setattr(isolation, "find_tools",
                        lambda: isolation.Tools(sh="/bin/sh", unshare=None, nsenter=None, setpriv=None))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert isolation.detect_isolation("auto") == "process"
    with pytest.raises(RuntimeError, match="unshare"):
        isolation.detect_isolation("namespaces")


@pytest.mark.skipif(not ROOT, reason="namespaces need root")
def test_root_detects_namespaces(tmp_path):
    assert isolation.detect_isolation("auto", trial_dir=tmp_path) == "namespaces"
    assert isolation.detect_isolation("namespaces") == "namespaces"
    assert list(tmp_path.iterdir()) == []  # the trial cleans up after itself


# ---------------------------------------------------------------------------------------------------------------
# Output tail


def test_tail_small_output_is_kept_whole():
    tail = isolation.OutputTail(10)
    tail.feed(b"hello")
    assert (tail.data, tail.dropped) == (b"hello", 0)


def test_tail_exact_limit():
    assert isolation.keep_tail(b"x" * 10, 10) == (b"x" * 10, 0)


def test_tail_keeps_last_bytes_across_chunks():
    tail = isolation.OutputTail(8)
    data = bytes(range(200))
    for i in range(0, 200, 7):
        tail.feed(data[i:i + 7])
    assert tail.data == data[-8:]
    assert tail.dropped == 192
    assert tail.total == 200


def test_tail_default_limit_is_24k():
    data = b"a" * 30000 + b"END"
    kept, dropped = isolation.keep_tail(data)
    assert len(kept) == store.OUTPUT_LIMIT == 24576
    assert kept.endswith(b"END")
    assert dropped == len(data) - 24576


def test_tail_ignores_empty_chunks():
    tail = isolation.OutputTail(4)
    tail.feed(b"")
    assert (tail.data, tail.dropped, tail.total) == (b"", 0, 0)


# ---------------------------------------------------------------------------------------------------------------
# Process table and tree kill


def test_parse_stat_with_odd_command_name():
    raw = b"123 (a) b (c)) S 1 123 123 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 4242 0 0"
    info = isolation._parse_stat(123, raw)
    assert info == isolation.ProcInfo(123, 1, 123, 123, "S", 4242)


def test_tree_members_follows_parents_and_sessions():
    table = {
        10: isolation.ProcInfo(10, 1, 10, 10, "S", 0),     # root, session leader
        11: isolation.ProcInfo(11, 10, 10, 10, "S", 0),    # child
        12: isolation.ProcInfo(12, 11, 12, 12, "S", 0),    # grandchild that called setsid
        13: isolation.ProcInfo(13, 1, 13, 10, "S", 0),     # orphan still in the root's session
        14: isolation.ProcInfo(14, 12, 12, 12, "Z", 0),    # zombie: not killable
        20: isolation.ProcInfo(20, 1, 20, 20, "S", 0),     # unrelated
    }
    assert isolation.tree_members([10], table, [10]) == {10, 11, 12, 13}
    assert isolation.tree_members([11], table) == {11, 12}


def test_kill_process_trees_gets_setsid_children():
    marker = f"30{uuid.uuid4().int % 10**6}.5"
    script = (f"setsid sleep {marker} & "            # escapes the process group and the session
              f"(sleep {marker} &) ; "                # orphan: reparented away, but still in the session
              f"sh -c 'sleep {marker}' & "
              f"sleep {marker}")
    proc = subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(pids_matching(marker)) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(pids_matching(marker)) >= 4
        killed = isolation.kill_process_trees([proc.pid])
        assert proc.pid in killed
        proc.wait(timeout=5)
        deadline = time.monotonic() + 5
        while pids_matching(marker) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pids_matching(marker) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_kill_process_trees_never_touches_ourselves():
    # Not called with our own pid as a root: that would kill every child of the test runner (other tests'
    # sandboxes). Instead: a tree whose members include us must leave us and our ancestors out.
    keep = isolation.protected_pids()
    assert os.getpid() in keep
    assert os.getppid() in keep
    table = isolation.read_proc_table()
    members = isolation.tree_members({os.getppid()}, table, set())
    assert os.getpid() in members  # we are in our parent's tree ...
    assert os.getpid() in keep  # ... and kill_process_trees subtracts `keep` from it


def test_wait_gone():
    proc = subprocess.Popen(["sleep", "0.1"])
    assert isolation.wait_gone([proc.pid], 5)
    proc.wait()


# ---------------------------------------------------------------------------------------------------------------
# Small helpers


@pytest.mark.parametrize(("content", "argv"), [
    ("echo hi", ["/bin/sh"]),
    ("#!/bin/bash\necho hi", ["/bin/bash"]),
    ("#!/usr/bin/env python3\nprint(1)", ["/usr/bin/env", "python3"]),
    ("#! /bin/bash -e -u\r\necho", ["/bin/bash", "-e -u"]),
    ("#!\necho", ["/bin/sh"]),
])
def test_shebang_argv(content, argv):
    assert isolation.shebang_argv(content) == argv


def test_hostname_ok():
    assert isolation.hostname_ok("web-1") == "web-1"
    assert len(isolation.hostname_ok("x" * 100)) == 64
    assert isolation.hostname_ok("") == "localhost"


def test_spawn_gives_a_session_and_only_the_listed_fds(tmp_path):
    isolation.make_fds_cloexec()  # as the agent host does at startup
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = isolation.spawn(["/bin/sh", "-c", "echo $(ls /proc/self/fd | wc -l) $(ps -o sid= -p $$)"],
                              {"PATH": isolation.ENV_PATH}, {0: devnull, 1: fd, 2: fd})
    finally:
        os.close(fd)
        os.close(devnull)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    nfds, sid = out.read_text().split()
    assert int(sid) == pid
    assert int(nfds) <= 5  # 0, 1, 2 and the directory ls reads


def test_private_host_dirs_are_outermost_and_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/root")
    dirs = isolation.private_host_dirs()
    assert dirs.count("/root") == (1 if os.path.isdir("/root") else 0)
    assert len(dirs) == len(set(dirs))
    assert not [d for d in dirs for e in dirs if d != e and d.startswith(e + "/")]
    checkout = os.path.realpath(Path(isolation.__file__).resolve().parents[1])
    assert any(checkout == d or checkout.startswith(d + "/") for d in dirs)


@pytest.mark.skipif(os.geteuid() != 0, reason="trusted.* extended attributes need root")
def test_hide_host_dirs_marks_opaque_with_the_host_mode(tmp_path: Path) -> None:
    isolation.hide_host_dirs(tmp_path, ["/usr/share"])
    for rel in ("usr", "usr/share"):
        assert (tmp_path / rel).stat().st_mode & 0o7777 == (Path("/") / rel).stat().st_mode & 0o7777
    assert os.getxattr(tmp_path / "usr/share", isolation.OPAQUE_XATTR) == b"y"
    with pytest.raises(OSError):
        os.getxattr(tmp_path / "usr", isolation.OPAQUE_XATTR)
    isolation.hide_host_dirs(tmp_path, ["/usr/share"])  # again: no error, still opaque
    assert os.getxattr(tmp_path / "usr/share", isolation.OPAQUE_XATTR) == b"y"


def test_protect_state_dir(tmp_path: Path) -> None:
    store.protect_state_dir(tmp_path)
    assert tmp_path.stat().st_mode & 0o777 == 0o700
    store.protect_state_dir(tmp_path, traversable=True)
    assert tmp_path.stat().st_mode & 0o777 == 0o711
    (tmp_path / store.DB_NAME).write_bytes(b"")
    (tmp_path / store.DB_NAME).chmod(0o644)
    store.connect(tmp_path).close()
    assert (tmp_path / store.DB_NAME).stat().st_mode & 0o777 == 0o600


def test_protect_state_dir_leaves_a_directory_that_is_not_a_sandbox(tmp_path: Path) -> None:
    (tmp_path / "someone-elses-file").write_text("x")
    tmp_path.chmod(0o755)
    store.protect_state_dir(tmp_path)
    assert tmp_path.stat().st_mode & 0o777 == 0o755
