"""sandbox/filewrite.py against a directory standing in for an instance's root (no namespaces needed)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import filewrite

ROOT = os.geteuid() == 0
pytestmark = pytest.mark.skipif(not filewrite.available(), reason="openat2 is not available here")
needs_root = pytest.mark.skipif(not ROOT, reason="changing owners needs root")


@pytest.fixture()
def inst(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """(the instance's root directory, an O_PATH descriptor of it), with its own /etc/passwd and /etc/group."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nalice:x:1234:1234::/home/alice:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nstaff:x:2345:alice\n")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        yield root, fd
    finally:
        os.close(fd)


def write(fd: int, target: str, name: str = "f", content: bytes = b"data", owner: str = "root", group: str = "root",
          mode: str = "0644", overwrite: bool = True) -> str | None:
    return filewrite.write_file(fd, target, name, content, owner, group, mode, overwrite)


def everything_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def test_writes_and_makes_missing_directories(inst: tuple[Path, int]) -> None:
    root, fd = inst
    assert write(fd, "/srv/a/b", content=b"\x00\xffpayload") is None
    assert (root / "srv/a/b/f").read_bytes() == b"\x00\xffpayload"
    for d in ("srv", "srv/a", "srv/a/b"):
        assert stat.S_IMODE((root / d).stat().st_mode) == 0o755, d
    assert stat.S_IMODE((root / "srv/a/b/f").stat().st_mode) == 0o644
    assert sorted(os.listdir(root / "srv/a/b")) == ["f"]  # no temporary file left


@pytest.mark.parametrize("link", ["/", "../../..", "/srv/../../..", "HOST"])
def test_a_symlink_in_the_target_path_stays_inside_the_root(inst: tuple[Path, int], tmp_path: Path,
                                                            link: str) -> None:
    root, fd = inst
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "srv").mkdir()
    # HOST: the host's absolute path of the directory above the root, which does not exist inside the root
    (root / "srv" / "link").symlink_to(str(tmp_path) if link == "HOST" else link)
    before = {p for p in everything_under(tmp_path) if not p.startswith("root")}
    code = write(fd, "/srv/link/outside/x")
    assert {p for p in everything_under(tmp_path) if not p.startswith("root")} == before  # nothing new outside
    if link == "HOST":
        assert code == "FilePathInvalid"  # as `mkdir -p` inside the instance: a dangling symlink
    else:
        assert code is None
        assert (root / "outside" / "x" / "f").read_bytes() == b"data"


def test_dotdot_in_the_target_stops_at_the_root(inst: tuple[Path, int], tmp_path: Path) -> None:
    root, fd = inst
    assert write(fd, "/../../../escaped") is None
    assert (root / "escaped" / "f").read_bytes() == b"data"
    assert not (tmp_path / "escaped").exists()


def test_magic_links_are_refused(inst: tuple[Path, int]) -> None:
    root, fd = inst
    (root / "proc-root").symlink_to("/proc/self/root")
    assert write(fd, "/proc-root/etc") == "FilePathInvalid"


def test_a_symlink_at_the_file_name_is_replaced_not_followed(inst: tuple[Path, int], tmp_path: Path) -> None:
    root, fd = inst
    victim = tmp_path / "victim"
    victim.write_text("host file")
    (root / "d").mkdir()
    (root / "d" / "f").symlink_to(victim)
    assert write(fd, "/d", overwrite=False) == "FileAlreadyExists"
    assert write(fd, "/d", content=b"new", overwrite=True) is None
    assert victim.read_text() == "host file"
    assert not (root / "d" / "f").is_symlink() and (root / "d" / "f").read_bytes() == b"new"


def test_overwrite_rule(inst: tuple[Path, int]) -> None:
    root, fd = inst
    assert write(fd, "/d", content=b"one", overwrite=False) is None
    assert write(fd, "/d", content=b"two", overwrite=False) == "FileAlreadyExists"
    assert (root / "d" / "f").read_bytes() == b"one"
    assert write(fd, "/d", content=b"three", overwrite=True) is None
    assert (root / "d" / "f").read_bytes() == b"three"
    assert sorted(os.listdir(root / "d")) == ["f"]


@needs_root
def test_owner_group_and_mode_come_from_the_instance_accounts(inst: tuple[Path, int]) -> None:
    root, fd = inst
    assert write(fd, "/d", "a", owner="alice", group="staff", mode="0640") is None
    st = (root / "d" / "a").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 2345, 0o640)
    assert write(fd, "/d", "b", owner="1234", group="2345", mode="4750") is None  # numeric ids that exist
    st = (root / "d" / "b").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 2345, 0o4750)
    assert write(fd, "/d", "c", mode="600") is None
    st = (root / "d" / "c").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)


@needs_root
def test_root_in_a_setgid_directory_still_ends_root_root(inst: tuple[Path, int]) -> None:
    root, fd = inst
    (root / "sgid").mkdir()
    os.chown(root / "sgid", 0, 2345)
    os.chmod(root / "sgid", 0o2775)
    assert write(fd, "/sgid/sub") is None
    st = (root / "sgid" / "sub" / "f").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)
    sub = (root / "sgid" / "sub").stat()
    assert stat.S_IMODE(sub.st_mode) == 0o2755 and sub.st_gid == 2345  # as mkdir -p leaves it


def test_unknown_accounts(inst: tuple[Path, int]) -> None:
    root, fd = inst
    assert write(fd, "/d", owner="bob") == "AccountNotExists"
    assert write(fd, "/d", owner="4321") == "AccountNotExists"  # a number nobody has
    assert write(fd, "/d", group="wheel") == "UserGroupNotExists"
    assert not (root / "d").exists()  # refused before anything was made


def test_accounts_are_the_instance_s_not_the_host_s(inst: tuple[Path, int]) -> None:
    root, fd = inst
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    assert write(fd, "/d", owner="alice") == "AccountNotExists"
    (root / "etc" / "passwd").unlink()
    os.mkfifo(root / "etc" / "passwd")  # never blocks: only regular files are read
    assert write(fd, "/d", owner="alice") == "AccountNotExists"
    assert write(fd, "/d", owner="root") is None  # root needs no entry


def test_bad_targets(inst: tuple[Path, int]) -> None:
    root, fd = inst
    (root / "file").write_text("x")
    assert write(fd, "/file") == "FilePathInvalid"
    assert write(fd, "/file/sub") == "FilePathInvalid"
    (root / "dangling").symlink_to("/nowhere")
    assert write(fd, "/dangling/sub") == "FilePathInvalid"
    (root / "d" / "f").mkdir(parents=True)
    assert write(fd, "/d") == "FileCreateFail"  # a directory at the file's name
    assert sorted(os.listdir(root / "d")) == ["f"]


def test_open_root_checks_the_recorded_identity(tmp_path: Path) -> None:
    ident = filewrite.root_identity(os.getpid())
    os.close(filewrite.open_root(os.getpid(), ident))
    with pytest.raises(OSError) as err:
        filewrite.open_root(os.getpid(), (ident[0], ident[1] + 1))
    assert err.value.errno == errno.ESRCH
