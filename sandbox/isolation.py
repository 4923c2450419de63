"""How the agent host runs things "on" an instance: namespaces (one PID+UTS+mount namespace per instance whose root is
an overlay of `/`) or plain processes. Also the low-level helpers the agent host needs: spawning with posix_spawn,
reading the process table, killing a whole process tree, keeping the tail of an output stream.

Nothing here touches the database; the agent host (`sandbox/agent/`) drives it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox import store

MODES = ("namespaces", "process")
ENV_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Where scripts are written inside a namespaces instance (the real Linux agent uses this directory).
INSTANCE_SCRIPT_DIR = "/usr/local/share/aliyun-assist/work/script"

# --------------------------------------------------------------------------------------------------------------------
# Shell programs. They run with the instance's /bin/sh (dash, bash or busybox ash all work) and report on fd 3.

# PID 1 of an instance. Arguments: merged-dir upper-dir work-dir hostname state-dir. fd 3: status pipe ("ready <host
# pid>" once the root is switched); fds 4 and 5: both ends of a pipe nobody writes to (a blocking read that needs no
# external binary). Exits on TERM/INT/HUP, which tears down the whole PID namespace; reaps adopted orphans (CHLD trap).
INIT_SCRIPT = r"""set -eu
root=$1 upper=$2 work=$3 host=$4 state=$5
read -r hp _ </proc/self/stat
printf '%s' "$host" >/proc/sys/kernel/hostname
mount -t overlay overlay -o "lowerdir=/,upperdir=$upper,workdir=$work" "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount --rbind /dev "$root/dev"
if [ -d "$root/dev/shm" ]; then mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$root/dev/shm"; fi
mount --rbind /sys "$root/sys"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/tmp"
if [ -d "$root$state" ]; then mount -t tmpfs -o ro,nosuid,nodev,mode=755,size=4k sandbox-hidden "$root$state"; fi
cd "$root"
pivot_root . .
umount -l .
cd /
set +e
echo "ready $hp" >&3
exec 3>&- </dev/null >/dev/null 2>&1
trap 'exit 0' TERM INT HUP
trap ':' CHLD
while :; do read -r _ <&4; done
"""

# Runs one command. Arguments: user workdir script-dir script-name home(''=keep) switch-user(0/1) interpreter [arg].
# Forks only what a run needs (no `id` for root, no chown unless switching user): at 100 runs at once on two
# cores, every extra fork per run shows up as delay before the last instance starts.
# stdin: the script text. fd 3: "E <ErrorCode>" before anything ran, or "S" right before the user's code starts.
RUN_WRAPPER = r"""u=$1 d=$2 sd=$3 f=$3/$4 h=$5 sw=$6
shift 6
if [ "$u" != root ] && ! id -u "$u" >/dev/null 2>&1; then echo "E AccountNotExists" >&3; exit 0; fi
if [ ! -d "$d" ]; then echo "E DirectoryNotExists" >&3; exit 0; fi
umask 022
if ! { { [ -d "$sd" ] || mkdir -p "$sd"; } && umask 077 && rm -f "$f" && cat >"$f" &&
       { [ "$sw" != 1 ] || chown "$u" "$f"; }; } 2>/dev/null; then
  echo "E ExecutionException could not write the script file $f" >&3; exit 0
fi
umask 022
if ! cd "$d" 2>/dev/null; then echo "E DirectoryNotExists" >&3; exit 0; fi
exec </dev/null
set -- "$@" "$f"
if [ -n "$h" ]; then
  if [ "$sw" = 1 ]; then set -- env "HOME=$h" "$@"; else export HOME="$h"; fi
fi
if [ "$sw" = 1 ]; then set -- runuser -u "$u" -- "$@"; fi
echo S >&3
exec 3>&-
exec "$@"
"""

# Writes one file (SendFile) where the agent host cannot write it itself (sandbox/filewrite.py needs openat2; see
# INTERNALS.md "File writes"). Arguments: dir name owner group mode overwrite(0/1). stdin: the content.
# fd 3: "OK" or "E <ErrorCode>". Like RUN_WRAPPER, it starts no process it can do without: a parts transfer writes
# thousands of files on two cores (root needs no lookup, an existing directory no mkdir, a file mktemp made 0600
# and root:root no chmod or chown), so the common write is mktemp, cat and mv.
FILE_WRAPPER = r"""d=$1 n=$2 o=$3 g=$4 m=$5 ow=$6
fail() { echo "E $1" >&3; exit 0; }
if [ "$o" != root ] && ! id -u "$o" >/dev/null 2>&1; then fail AccountNotExists; fi
if [ "$g" = root ]; then
  :
elif command -v getent >/dev/null 2>&1; then
  getent group "$g" >/dev/null 2>&1 || fail UserGroupNotExists
else
  grep -q "^$g:" /etc/group 2>/dev/null || fail UserGroupNotExists
fi
umask 022
[ -d "$d" ] || mkdir -p "$d" 2>/dev/null || fail FilePathInvalid
[ -d "$d" ] || fail FilePathInvalid
t="$d/$n"
if [ "$ow" != 1 ] && { [ -e "$t" ] || [ -L "$t" ]; }; then fail FileAlreadyExists; fi
tmp=$(mktemp "$d/.sandbox-send.XXXXXX" 2>/dev/null) || fail FileCreateFail
cat >"$tmp" 2>/dev/null || { rm -f "$tmp"; fail FileCreateFail; }
if [ "$o:$g" != root:root ] || ! { [ -O / ] && [ -G / ] && [ -O "$tmp" ] && [ -G "$tmp" ]; }; then
  chown "$o:$g" "$tmp" 2>/dev/null || { rm -f "$tmp"; fail FileCreateFail; }
fi
case $m in
  600|0600) ;;
  *) chmod "$m" "$tmp" 2>/dev/null || { rm -f "$tmp"; fail FileAuthorityInvalid; } ;;
esac
if [ "$ow" = 1 ]; then
  mv -fT "$tmp" "$t" 2>/dev/null || { rm -f "$tmp"; fail FileCreateFail; }
else
  if ! ln "$tmp" "$t" 2>/dev/null; then
    rm -f "$tmp"
    if [ -e "$t" ] || [ -L "$t" ]; then fail FileAlreadyExists; fi
    fail FileCreateFail
  fi
  rm -f "$tmp"
fi
echo OK >&3
"""

# The same steps as INIT_SCRIPT, then exit: used to check that namespaces really work here.
_TRIAL_SCRIPT = r"""set -eu
root=$1
printf 'sandbox-trial' >/proc/sys/kernel/hostname
mount -t overlay overlay -o "lowerdir=/,upperdir=$2,workdir=$3" "$root"
mount -t proc proc "$root/proc"
mount -t tmpfs tmpfs "$root/tmp"
cd "$root"
pivot_root . .
umount -l .
cd /
[ -r /proc/1/stat ]
[ -z "$(ls -A /root)" ] || { echo "/root shows the host's files through the opaque upper directory" >&2; exit 1; }
echo trial > /tmp/trial
[ "$(cat /proc/sys/kernel/hostname)" = sandbox-trial ]
echo ok
"""


# --------------------------------------------------------------------------------------------------------------------
# Tools


@dataclass(frozen=True)
class Tools:
    sh: str
    unshare: str | None
    nsenter: str | None
    setpriv: str | None  # only for --pdeathsig (children die with the agent host); optional

    @property
    def namespaces_possible(self) -> bool:
        return bool(self.unshare and self.nsenter and shutil.which("mount") and shutil.which("pivot_root")
                    and shutil.which("umount"))


def find_tools() -> Tools:
    path = os.environ.get("PATH", "") + ":" + ENV_PATH
    setpriv = shutil.which("setpriv", path=path)
    if setpriv and not _setpriv_has_pdeathsig(setpriv):
        setpriv = None
    return Tools(
        sh="/bin/sh",
        unshare=shutil.which("unshare", path=path),
        nsenter=shutil.which("nsenter", path=path),
        setpriv=setpriv,
    )


def _setpriv_has_pdeathsig(setpriv: str) -> bool:
    try:
        out = subprocess.run([setpriv, "--help"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return b"--pdeathsig" in out.stdout


# --------------------------------------------------------------------------------------------------------------------
# Isolation detection


def namespaces_trial(trial_dir: str | os.PathLike[str] | None = None, timeout: float = 15.0) -> str | None:
    """Run the init steps once (unshare + overlay of / + proc + pivot_root) in a throwaway namespace.

    Returns None when it worked, else a description of what failed.
    """
    if os.geteuid() != 0:
        return "namespaces isolation needs root (the agent host is not running as uid 0)"
    tools = find_tools()
    if not tools.namespaces_possible:
        return "namespaces isolation needs util-linux unshare, nsenter, mount, umount and pivot_root on PATH"
    base = Path(trial_dir) if trial_dir is not None else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".isolation-trial-", dir=base))
    try:
        for sub in ("upper", "work", "merged"):
            (tmp / sub).mkdir()
        try:
            hide_host_dirs(tmp / "upper", ["/root"])
        except OSError as exc:
            return f"cannot mark directories opaque in an overlay upper layer here ({OPAQUE_XATTR}): {exc}"
        bad = [p for p in (tmp,) if any(c in str(p) for c in ",:\\ \t\n")]
        if bad:
            return f"the state directory path {bad[0]} contains characters overlayfs options cannot carry (',:\\ ')"
        assert tools.unshare is not None
        argv = [tools.unshare, "--pid", "--fork", "--mount", "--uts", "--propagation", "private", "--",
                tools.sh, "-c", _TRIAL_SCRIPT, "sandbox-trial",
                str(tmp / "merged"), str(tmp / "upper"), str(tmp / "work")]
        try:
            res = subprocess.run(argv, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL,
                                 env={"PATH": ENV_PATH})
        except subprocess.TimeoutExpired:
            return "the namespaces trial (unshare + overlay mount + pivot_root) timed out"
        except OSError as exc:
            return f"the namespaces trial could not start: {exc}"
        if res.returncode != 0 or b"ok" not in res.stdout:
            detail = (res.stderr or res.stdout).decode(errors="replace").strip().splitlines()
            return ("the namespaces trial (unshare --pid --mount --uts + overlay of / + pivot_root) failed: "
                    + (detail[-1] if detail else f"exit status {res.returncode}"))
        if (tmp / "upper" / "tmp" / "trial").exists():
            return "the namespaces trial leaked /tmp into the overlay upper layer"
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def detect_isolation(requested: str, trial_dir: str | os.PathLike[str] | None = None) -> str:
    """'auto' | 'namespaces' | 'process' -> 'namespaces' or 'process'.

    auto: namespaces only when running as root and a real trial succeeds. 'namespaces' requested but impossible:
    RuntimeError saying why. `trial_dir`: where to put the trial's overlay upper/work (use the state directory, so
    the trial runs on the filesystem the instances will use).
    """
    if requested == "process":
        return "process"
    if requested not in ("auto", "namespaces"):
        raise ValueError(f"unknown isolation {requested!r}: use auto, namespaces or process")
    problem = namespaces_trial(trial_dir)
    if problem is None:
        return "namespaces"
    if requested == "namespaces":
        raise RuntimeError(f"--isolation namespaces is not possible here: {problem}. Use --isolation process "
                           "(plain processes, no filesystem isolation) or run as root on Linux with overlayfs.")
    return "process"


# --------------------------------------------------------------------------------------------------------------------
# Host directories an instance must not see into

OPAQUE_XATTR = "trusted.overlay.opaque"


def private_host_dirs() -> list[str]:
    """Host directories that instances see empty: home directories (the controller's Ansible temporary files, with
    a running module's arguments, and cloud credential files live there) and the checkout the sandbox runs from
    (its `.cache` holds test configurations with the keys). The state directory is hidden separately (INIT_SCRIPT).
    Returned outermost first, without duplicates or directories inside another one of the list."""
    wanted = ["/root", "/home", os.environ.get("HOME") or "/root", str(Path(__file__).resolve().parents[1])]
    kept: list[str] = []
    for raw in sorted({os.path.realpath(p) for p in wanted}, key=len):
        if raw == "/" or not os.path.isdir(raw):
            continue
        if not any(raw == k or raw.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(raw)
    return kept


def hide_host_dirs(upper: Path, dirs: Iterable[str] | None = None) -> None:
    """Make each directory opaque in an instance's overlay upper layer: the instance sees it empty (as on a fresh
    image) and can still write there, and its own files in it survive restarts. Each directory, and each parent
    created on the way, takes the host directory's owner and mode, as a copy-up would. Raises OSError."""
    for host_dir in private_host_dirs() if dirs is None else dirs:
        parts = Path(host_dir).relative_to("/").parts
        for depth in range(1, len(parts) + 1):
            rel = Path(*parts[:depth])
            target = upper / rel
            if not target.is_dir():
                st = os.stat(Path("/") / rel)
                target.mkdir()
                os.chown(target, st.st_uid, st.st_gid)
                os.chmod(target, st.st_mode & 0o7777)
        os.setxattr(upper / Path(*parts), OPAQUE_XATTR, b"y", follow_symlinks=False)


# --------------------------------------------------------------------------------------------------------------------
# Output tail


class OutputTail:
    """Keeps only the last `limit` bytes of a stream and counts the bytes dropped before them."""

    __slots__ = ("_buf", "limit", "total")

    def __init__(self, limit: int = store.OUTPUT_LIMIT) -> None:
        self.limit = limit
        self.total = 0
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        self._buf += data
        if len(self._buf) > 2 * self.limit:
            del self._buf[: len(self._buf) - self.limit]

    @property
    def data(self) -> bytes:
        return bytes(self._buf[-self.limit:]) if self.limit else b""

    @property
    def dropped(self) -> int:
        return max(0, self.total - self.limit)


def keep_tail(data: bytes, limit: int = store.OUTPUT_LIMIT) -> tuple[bytes, int]:
    """(last `limit` bytes, bytes dropped)."""
    tail = OutputTail(limit)
    tail.feed(data)
    return tail.data, tail.dropped


# --------------------------------------------------------------------------------------------------------------------
# Process table and tree kill


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    starttime: int


def read_stat(pid: int, proc: str = "/proc") -> ProcInfo | None:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    return _parse_stat(pid, raw)


def _parse_stat(pid: int, raw: bytes) -> ProcInfo | None:
    end = raw.rfind(b")")
    if end < 0:
        return None
    fields = raw[end + 2:].split()
    try:
        return ProcInfo(pid, int(fields[1]), int(fields[2]), int(fields[3]), fields[0].decode(), int(fields[19]))
    except (IndexError, ValueError):
        return None


def read_proc_table(proc: str = "/proc") -> dict[int, ProcInfo]:
    table: dict[int, ProcInfo] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        info = read_stat(int(name), proc)
        if info is not None:
            table[info.pid] = info
    return table


def tree_members(roots: Iterable[int], table: dict[int, ProcInfo], groups: Iterable[int] = ()) -> set[int]:
    """Live processes that are `roots`, their descendants (by parent pid), or members of the process groups /
    sessions whose ids are in `groups` — and their descendants too."""
    groups = set(groups)
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    start = {pid for pid in roots if pid in table}
    start |= {info.pid for info in table.values() if info.pgid in groups or info.sid in groups}
    found: set[int] = set()
    todo = list(start)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return {pid for pid in found if table[pid].state not in ("Z", "X")}


def protected_pids() -> set[int]:
    """Ourselves and our ancestors: never signalled by a tree kill."""
    pids = {0, 1}
    pid = os.getpid()
    for _ in range(64):
        pids.add(pid)
        info = read_stat(pid)
        if info is None or info.ppid <= 1:
            break
        pid = info.ppid
    return pids


def kill_process_trees(roots: Iterable[int], groups: Iterable[int] | None = None, rounds: int = 8) -> set[int]:
    """SIGKILL every process in the trees of `roots` (descendants by parent pid, plus every process whose process
    group or session id is in `groups`, default = the roots: a run is started as a session leader).

    The trees are first frozen with SIGSTOP, re-scanning until nothing new appears, so a process cannot escape by
    forking while we look (a child that called setsid is still found through its parent). Returns the pids killed.
    """
    roots = set(roots)
    group_ids = set(roots if groups is None else groups)
    keep = protected_pids()
    frozen: set[int] = set()
    for _ in range(rounds):
        table = read_proc_table()
        members = tree_members(roots | frozen, table, group_ids) - keep
        new = members - frozen
        if not new:
            break
        for pid in new:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        frozen |= new
    for pid in frozen:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return frozen


def pids_with_env(name: str, value: str, proc: str = "/proc") -> list[int]:
    """Live processes whose environment has `name=value` (needs the right to read /proc/PID/environ)."""
    needle = f"{name}={value}".encode()
    found: list[int] = []
    me = os.getpid()
    try:
        names = os.listdir(proc)
    except OSError:
        return found
    for entry in names:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"{proc}/{entry}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry))
    return found


def descendants_of(pid: int) -> set[int]:
    return tree_members([pid], read_proc_table()) - {pid}


def wait_gone(pids: Iterable[int], timeout: float) -> bool:
    """Wait until none of `pids` is alive (zombies count as gone). True when all are gone."""
    pending = set(pids)
    deadline = time.monotonic() + timeout
    while pending:
        for pid in list(pending):
            info = read_stat(pid)
            if info is None or info.state in ("Z", "X"):
                pending.discard(pid)
        if not pending:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# --------------------------------------------------------------------------------------------------------------------
# Spawning


_RESET_SIGNALS = tuple(s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)
                       and int(s) < 32)


def _high_fd(fd: int, keep: list[int]) -> int:
    """A duplicate >= 10 of `fd` (close-on-exec), so posix_spawn's dup2 never has source == target."""
    if fd >= 10:
        return fd
    dup = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    keep.append(dup)
    return dup


def spawn(argv: Sequence[str], env: dict[str, str], fds: dict[int, int]) -> int:
    """posix_spawn `argv` (argv[0] absolute) as a new session leader with default signal dispositions, an empty
    signal mask and exactly the descriptors in `fds` (target -> source) besides nothing else (every other descriptor
    of the agent host is close-on-exec)."""
    extra: list[int] = []
    try:
        actions = [(os.POSIX_SPAWN_DUP2, _high_fd(src, extra), dst) for dst, src in sorted(fds.items())]
        return os.posix_spawn(argv[0], list(argv), env, file_actions=actions, setsid=True,
                              setsigdef=_RESET_SIGNALS, setsigmask=())
    finally:
        for fd in extra:
            os.close(fd)


def make_fds_cloexec(keep: Iterable[int] = (0, 1, 2)) -> None:
    """Mark every inherited descriptor (but `keep`) close-on-exec, so children get only what `spawn` passes."""
    keep = set(keep)
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)


def pdeathsig_prefix(tools: Tools) -> list[str]:
    return [tools.setpriv, "--pdeathsig", "KILL", "--"] if tools.setpriv else []


def init_argv(tools: Tools, merged: Path, upper: Path, work: Path, hostname: str, state_dir: Path) -> list[str]:
    assert tools.unshare is not None
    return [*pdeathsig_prefix(tools), tools.unshare, "--pid", "--fork", "--kill-child=SIGKILL", "--mount", "--uts",
            "--propagation", "private", "--", tools.sh, "-c", INIT_SCRIPT, "sandbox-init",
            str(merged), str(upper), str(work), hostname, str(state_dir)]


def enter_prefix(tools: Tools, init_pid: int | None) -> list[str]:
    """argv prefix that runs a command inside an instance (nothing in process mode)."""
    if init_pid is None:
        return pdeathsig_prefix(tools)
    assert tools.nsenter is not None
    return [*pdeathsig_prefix(tools), tools.nsenter, "-t", str(init_pid), "-m", "-u", "-p", "--"]


def shebang_argv(content: str) -> list[str]:
    """How the kernel would start the script: [interpreter, optional-arg] from a `#!` line, else ['/bin/sh']."""
    if not content.startswith("#!"):
        return ["/bin/sh"]
    line = content[2:].split("\n", 1)[0].rstrip("\r").strip()
    if not line:
        return ["/bin/sh"]
    parts = line.split(None, 1)
    return [parts[0]] if len(parts) == 1 else [parts[0], parts[1].strip()]


def hostname_ok(hostname: str) -> str:
    """A value the kernel accepts for the UTS hostname (at most 64 bytes)."""
    name = hostname.encode()[:64].decode(errors="ignore").strip()
    return name or "localhost"
