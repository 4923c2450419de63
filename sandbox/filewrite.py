"""Writing one SendFile file into an instance from the agent host itself, with no process started.

The agent host (root, in the host's namespaces) holds an `O_PATH` descriptor of the instance's root directory:
`/proc/<init pid>/root` in namespaces mode (the overlay the instance's PID 1 pivoted into; its mounts, such as the
private /tmp, are crossed as inside the instance), `/` in process mode. Every directory is then resolved with
openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) relative to that descriptor: `..` and absolute or relative
symlinks are resolved as the instance would resolve them and can never leave its root, and /proc magic links are
refused. Everything after that works on single names relative to a directory descriptor (O_NOFOLLOW, O_EXCL,
renameat, linkat), so nothing follows a symlink the instance placed at the file's own name.

The steps and error codes are those of `isolation.FILE_WRAPPER` (the process-based way, kept for kernels without
openat2): owner and group looked up in the instance's /etc/passwd and /etc/group, `mkdir -p` of the target
directory (0755, as under umask 022), the Overwrite rule checked before writing, the content written to a
temporary file in the target directory, chown and chmod on it, then rename (Overwrite) or link (no Overwrite, so a
file created meanwhile is never replaced).

Nothing here touches the database; `sandbox/agent/files.py` drives it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

# openat2(2): same number on every architecture that has it (added after the syscall tables were unified).
_SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_DIR_MODE = 0o755  # `mkdir -p` under umask 022
_TMP_PREFIX = ".sandbox-send."
_TMP_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_ACCOUNT_FILE_LIMIT = 4 << 20  # bytes read of /etc/passwd or /etc/group


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def openat2(dirfd: int, path: str, flags: int, resolve: int = _RESOLVE, mode: int = 0) -> int:
    """openat2(2) with `resolve` flags (default: inside the root `dirfd`, no magic links); O_CLOEXEC is added.
    Raises OSError like os.open."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path)
    fd = _syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(raw), ctypes.byref(how),
                  ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def available() -> bool:
    """True when this kernel (and any seccomp filter) lets us use openat2 with RESOLVE_IN_ROOT."""
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(openat2(root, "/", os.O_PATH | os.O_DIRECTORY))
    except (OSError, AttributeError, ctypes.ArgumentError):
        return False
    finally:
        os.close(root)
    return True


# --------------------------------------------------------------------------------------------------------------------
# The instance's root


def root_identity(init_pid: int | None) -> tuple[int, int]:
    """(st_dev, st_ino) of the root of `init_pid` (None: of `/`), taken when the instance's namespace is ready."""
    st = os.stat("/" if init_pid is None else f"/proc/{init_pid}/root")
    return st.st_dev, st.st_ino


def open_root(init_pid: int | None, identity: tuple[int, int] | None = None) -> int:
    """An O_PATH descriptor of the root of `init_pid` (None: of `/`). With `identity`, raises OSError(ESRCH) when
    that root is no longer the one recorded (the pid now names another process)."""
    fd = os.open("/" if init_pid is None else f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    if identity is not None:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != identity:
            os.close(fd)
            raise OSError(errno.ESRCH, "the instance's root changed", str(init_pid))
    return fd


# --------------------------------------------------------------------------------------------------------------------
# Accounts, as `id -u NAME` and `getent group NAME` answer inside the instance (files only)


def account_id(root_fd: int, path: str, name: str) -> int | None:
    """The id (third field) of `name` in the instance's /etc/passwd or /etc/group (`path`), else None. A numeric
    `name` that is nobody's name matches the entry with that id, as `id -u 1000` does."""
    try:
        fd = openat2(root_fd, path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        size = 0
        while size < _ACCOUNT_FILE_LIMIT:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    by_id = None
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) < 3 or not fields[2].isdigit():
            continue
        if fields[0] == name:
            return int(fields[2])
        if by_id is None and name.isdigit() and int(fields[2]) == int(name):
            by_id = int(name)
    return by_id


# --------------------------------------------------------------------------------------------------------------------
# Directories


def _open_dir(root_fd: int, path: str) -> int:
    return openat2(root_fd, path, os.O_PATH | os.O_DIRECTORY)


def make_dirs(root_fd: int, target: str) -> int:
    """`mkdir -p target` inside the root; returns an O_PATH descriptor of the directory. Raises OSError."""
    try:
        return _open_dir(root_fd, target)
    except FileNotFoundError:
        pass
    parts = [p for p in target.split("/") if p]
    for n in range(1, len(parts) + 1):
        prefix = "/" + "/".join(parts[:n])
        try:
            os.close(_open_dir(root_fd, prefix))
            continue
        except FileNotFoundError:
            pass
        parent = _open_dir(root_fd, "/" + "/".join(parts[:n - 1]))
        try:
            os.mkdir(parts[n - 1], _DIR_MODE, dir_fd=parent)
        except FileExistsError:
            pass  # made meanwhile, or a dangling symlink: the next lookup decides
        else:
            _fix_dir_mode(parent, parts[n - 1])
        finally:
            os.close(parent)
    return _open_dir(root_fd, target)


def _fix_dir_mode(parent: int, name: str) -> None:
    """The new directory's permission bits as `mkdir -p` under umask 022 leaves them, whatever our own umask; the
    setgid bit a setgid parent passes on stays."""
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_IMODE(mode) & 0o777 != _DIR_MODE:
            os.fchmod(fd, (stat.S_IMODE(mode) & 0o7000) | _DIR_MODE)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------------------------
# The write


def _exists(dir_fd: int, name: str) -> bool:
    """`[ -e t ] || [ -L t ]`: anything at that name, a dangling symlink included."""
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def _temp_file(dir_fd: int) -> tuple[str, int]:
    for _ in range(100):
        name = _TMP_PREFIX + "".join(_TMP_CHARS[b % len(_TMP_CHARS)] for b in os.urandom(6))
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
        except FileExistsError:
            continue
        return name, fd
    raise OSError(errno.EEXIST, "no free temporary name")


def write_file(root_fd: int, target_dir: str, name: str, content: bytes, owner: str, group: str, mode: str,
               overwrite: bool) -> str | None:
    """Write one file inside the root `root_fd`. Returns None on success, else the file task's ErrorCode.
    `name` has no '/' and is not '.' or '..'; `target_dir` is absolute; `mode` is 3 or 4 octal digits (the caller
    checked all three)."""
    uid = account_id(root_fd, "/etc/passwd", owner)
    if uid is None:
        if owner != "root":
            return "AccountNotExists"
        uid = 0
    gid = account_id(root_fd, "/etc/group", group)
    if gid is None:
        if group != "root":
            return "UserGroupNotExists"
        gid = 0
    try:
        dir_fd = make_dirs(root_fd, target_dir)
    except OSError:
        return "FilePathInvalid"
    try:
        if not overwrite and _exists(dir_fd, name):
            return "FileAlreadyExists"
        return _write_and_place(dir_fd, name, content, uid, gid, int(mode, 8), overwrite)
    finally:
        os.close(dir_fd)


def _write_and_place(dir_fd: int, name: str, content: bytes, uid: int, gid: int, mode: int, overwrite: bool
                     ) -> str | None:
    try:
        tmp, fd = _temp_file(dir_fd)
    except OSError:
        return "FileCreateFail"
    placed = False
    try:
        code = _fill(fd, content, uid, gid, mode)
        if code is not None:
            return code
        try:
            if overwrite:
                os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                placed = True
            else:
                os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            return "FileAlreadyExists"
        except OSError:
            return "FileCreateFail"
        return None
    finally:
        if not placed:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass


def _fill(fd: int, content: bytes, uid: int, gid: int, mode: int) -> str | None:
    """Content, then owner, then mode, on the open temporary file (closed here)."""
    try:
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
            st = os.fstat(fd)
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.fchown(fd, uid, gid)
        except OSError:
            return "FileCreateFail"
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
                os.fchmod(fd, mode)
        except OSError:
            return "FileAuthorityInvalid"
        return None
    finally:
        os.close(fd)
