"""SQLite state shared by the API server, the agent host and `ctl` (three processes, one file, WAL mode).

Every table is described here and nowhere else. Times are stored as float epoch seconds (UTC) and
formatted on output by `iso()` / `iso_minute()`. Per-instance rows carry the *current* run; finished
runs of repeating invocations are copied to `run_history` for IncludeHistory.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import stat
import string
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

DB_NAME = "sandbox.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- access keys: the main key, a read-only key, and STS keys (security_token set, expires_at set)
CREATE TABLE IF NOT EXISTS credentials (
    access_key_id TEXT PRIMARY KEY,
    access_key_secret TEXT NOT NULL,
    security_token TEXT,
    readonly INTEGER NOT NULL DEFAULT 0,
    expires_at REAL
);
CREATE TABLE IF NOT EXISTS nonces (
    nonce TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS regions (
    region_id TEXT PRIMARY KEY,
    local_name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    region_id TEXT NOT NULL,
    zone_id TEXT NOT NULL,
    instance_name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    os_type TEXT NOT NULL,              -- 'linux' | 'windows' (DescribeInstances spelling)
    os_name TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    private_ip TEXT NOT NULL,
    status TEXT NOT NULL,               -- Running | Stopped | Starting | Stopping
    agent_installed INTEGER NOT NULL,   -- 0: --no-agent until InstallCloudAssistant + reboot
    agent_install_pending INTEGER NOT NULL DEFAULT 0,
    agent_running INTEGER NOT NULL,     -- ctl agent stop/start
    agent_version TEXT NOT NULL,
    last_heartbeat REAL,
    last_invoked REAL,
    boot_count INTEGER NOT NULL DEFAULT 1,  -- bumped by StartInstance/RebootInstance; the agent host reacts
    created_at REAL NOT NULL,
    seq INTEGER NOT NULL                 -- creation order, for stable paging
);
CREATE INDEX IF NOT EXISTS instances_region ON instances(region_id, seq);
CREATE TABLE IF NOT EXISTS instance_tags (
    instance_id TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (instance_id, tag_key)
);
CREATE INDEX IF NOT EXISTS instance_tags_kv ON instance_tags(tag_key, tag_value);
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    region_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL,
    content TEXT NOT NULL,              -- plain text (decoded)
    working_dir TEXT NOT NULL DEFAULT '',
    timeout INTEGER NOT NULL DEFAULT 60,
    enable_parameter INTEGER NOT NULL DEFAULT 0,
    launcher TEXT NOT NULL DEFAULT '',
    resource_group_id TEXT NOT NULL DEFAULT '',
    invoke_times INTEGER NOT NULL DEFAULT 0,
    visible INTEGER NOT NULL DEFAULT 1,  -- 0: RunCommand with KeepCommand=false (not listed, deleted after run)
    created_at REAL NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS command_tags (
    command_id TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (command_id, tag_key)
);
CREATE TABLE IF NOT EXISTS invocations (
    invoke_id TEXT PRIMARY KEY,
    region_id TEXT NOT NULL,
    command_id TEXT NOT NULL,
    command_name TEXT NOT NULL DEFAULT '',
    command_type TEXT NOT NULL,
    command_description TEXT NOT NULL DEFAULT '',
    command_content TEXT NOT NULL,      -- plain text, placeholders not yet substituted
    parameters TEXT NOT NULL DEFAULT '{}',  -- JSON object text
    repeat_mode TEXT NOT NULL,          -- Once | Period | NextRebootOnly | EveryReboot
    frequency TEXT NOT NULL DEFAULT '',
    timeout INTEGER NOT NULL,
    working_dir TEXT NOT NULL DEFAULT '',
    username TEXT NOT NULL DEFAULT '',
    container_id TEXT NOT NULL DEFAULT '',
    container_name TEXT NOT NULL DEFAULT '',
    launcher TEXT NOT NULL DEFAULT '',
    termination_mode TEXT NOT NULL DEFAULT 'ProcessTree',
    resource_group_id TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    stopped_at REAL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS invocations_order ON invocations(region_id, seq);
CREATE TABLE IF NOT EXISTS invocation_tags (
    invoke_id TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (invoke_id, tag_key)
);
-- one row per (invocation, instance): the current run. status is the per-instance InvocationStatus.
CREATE TABLE IF NOT EXISTS invocation_instances (
    invoke_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    status TEXT NOT NULL,               -- per-instance InvocationStatus (reference §3.1)
    run_no INTEGER NOT NULL DEFAULT 0,  -- runs started so far (== Repeats)
    next_run_at REAL,                   -- next start (NULL: wait for a boot, or none)
    exit_code INTEGER,
    output BLOB NOT NULL DEFAULT X'',   -- raw bytes, last 24 KiB
    dropped INTEGER NOT NULL DEFAULT 0,
    error_code TEXT NOT NULL DEFAULT '',
    error_info TEXT NOT NULL DEFAULT '',
    creation_time REAL NOT NULL,
    start_time REAL,
    finish_time REAL,
    stop_time REAL,
    update_time REAL NOT NULL,
    PRIMARY KEY (invoke_id, instance_id)
);
CREATE INDEX IF NOT EXISTS invocation_instances_todo ON invocation_instances(status, next_run_at);
CREATE INDEX IF NOT EXISTS invocation_instances_instance ON invocation_instances(instance_id);
CREATE TABLE IF NOT EXISTS run_history (
    invoke_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    run_no INTEGER NOT NULL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    output BLOB NOT NULL DEFAULT X'',
    dropped INTEGER NOT NULL DEFAULT 0,
    error_code TEXT NOT NULL DEFAULT '',
    error_info TEXT NOT NULL DEFAULT '',
    start_time REAL,
    finish_time REAL,
    PRIMARY KEY (invoke_id, instance_id, run_no)
);
CREATE TABLE IF NOT EXISTS file_tasks (
    invoke_id TEXT PRIMARY KEY,
    region_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    content BLOB NOT NULL,              -- decoded bytes
    content_type TEXT NOT NULL,         -- PlainText | Base64 (as sent)
    target_dir TEXT NOT NULL,
    file_owner TEXT NOT NULL,
    file_group TEXT NOT NULL,
    file_mode TEXT NOT NULL,
    overwrite INTEGER NOT NULL,
    timeout INTEGER NOT NULL,
    resource_group_id TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS file_task_tags (
    invoke_id TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (invoke_id, tag_key)
);
CREATE TABLE IF NOT EXISTS file_task_instances (
    invoke_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    status TEXT NOT NULL,               -- Pending|Running|Success|Failed|Invalid|Aborted|Error|Timeout
    error_code TEXT NOT NULL DEFAULT '',
    error_info TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    creation_time REAL NOT NULL,
    start_time REAL,
    finish_time REAL,
    update_time REAL NOT NULL,
    PRIMARY KEY (invoke_id, instance_id)
);
CREATE INDEX IF NOT EXISTS file_task_instances_todo ON file_task_instances(status);
-- ClientToken idempotency: same (action, token) and same parameter digest -> the stored response
CREATE TABLE IF NOT EXISTS client_tokens (
    access_key_owner TEXT NOT NULL,
    action TEXT NOT NULL,
    token TEXT NOT NULL,
    params_digest TEXT NOT NULL,
    response TEXT NOT NULL,             -- JSON of the response body without RequestId
    created_at REAL NOT NULL,
    PRIMARY KEY (access_key_owner, action, token)
);
CREATE TABLE IF NOT EXISTS api_calls (
    action TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
-- process starts per (invocation, instance, run): the agent host bumps it when it starts a process
CREATE TABLE IF NOT EXISTS executions (
    invoke_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    run_no INTEGER NOT NULL,
    starts INTEGER NOT NULL,
    PRIMARY KEY (invoke_id, instance_id, run_no)
);
-- replies the faults dropped after the request was processed (ctl stats lists them with their ClientToken)
CREATE TABLE IF NOT EXISTS dropped_replies (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    client_token TEXT
);
-- ctl faults: keys throttle, server_errors, drop (fractions), latency_ms, drop_first (replies still to drop),
-- actions (comma list, '' = all)
CREATE TABLE IF NOT EXISTS faults (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- sequence source for the seq columns (monotonic across processes)
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

# Per-instance command statuses (reference §3.1).
TERMINAL_STATUSES = frozenset(
    {"Success", "Failed", "Error", "Timeout", "Invalid", "Aborted", "Cancelled", "Terminated"}
)
OUTPUT_LIMIT = 24 * 1024


def now() -> float:
    return time.time()


def iso(ts: float | None) -> str:
    """`yyyy-MM-ddTHH:mm:ssZ` (invocation times); '' for None."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_minute(ts: float | None) -> str:
    """`yyyy-MM-ddTHH:mmZ` (DescribeCommands / DescribeInstances times); '' for None."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


_ALNUM = string.ascii_lowercase + string.digits

REGION_ABBREVIATIONS = {
    "cn-hangzhou": "hz",
    "cn-beijing": "bj",
    "cn-shanghai": "sh",
    "cn-shenzhen": "sz",
    "cn-qingdao": "qd",
    "cn-zhangjiakou": "zjk",
    "cn-chengdu": "cd",
    "ap-southeast-1": "sg",
    "eu-central-1": "eu",
    "us-west-1": "us",
}


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def new_id(prefix: str, region_id: str | None = None) -> str:
    """`i-…`, `c-hz…`, `t-hz…`, `f-hz…` shaped like the real IDs."""
    if prefix == "i":
        return f"i-{_random(20)}"
    abbrev = REGION_ABBREVIATIONS.get(region_id or "", "xx")
    return f"{prefix}-{abbrev}{_random(14)}"


def request_id() -> str:
    return str(uuid.uuid4()).upper()


def db_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / DB_NAME


def protect_state_dir(state_dir: str | os.PathLike[str], traversable: bool = False) -> None:
    """Make DIR its owner's alone: 0700, or 0711 when other users must pass through it (process isolation keeps
    each instance's home under DIR, and a run as another user starts there). DIR holds the keys (`sandbox.json`,
    `sandbox.db`, the ready line in `serve.stdout`). Left alone when another user owns it, or when it is neither
    empty nor a sandbox's."""
    path = Path(state_dir)
    st = path.stat()
    if st.st_uid != os.geteuid():
        return
    if not (path / DB_NAME).exists() and any(path.iterdir()):
        return  # a directory that holds other things (`--state-dir /work` by mistake) is not the sandbox's to lock
    want = 0o711 if traversable else 0o700
    if stat.S_IMODE(st.st_mode) != want:
        path.chmod(want)


def _private_file(path: Path) -> None:
    """Create `path` mode 0600 if missing, or take group/other bits away; SQLite gives its -wal and -shm files the
    database file's mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError:
        return  # sqlite3.connect reports what is wrong with the path
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o700)
    finally:
        os.close(fd)


def connect(state_dir: str | os.PathLike[str]) -> sqlite3.Connection:
    """One connection per thread/process. Autocommit mode: use `transaction()` for multi-statement writes."""
    _private_file(db_path(state_dir))
    conn = sqlite3.connect(db_path(state_dir), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


def init_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, so concurrent writers in other processes serialise instead of failing.

    Nested use joins the outer transaction: the server wraps a handler and its ClientToken record in one.
    """
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def next_seq(conn: sqlite3.Connection, name: str) -> int:
    """Monotonic counter; call inside a transaction."""
    conn.execute(
        "INSERT INTO counters(name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
        (name,),
    )
    row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return int(row[0])


def get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def tags_of(conn: sqlite3.Connection, table: str, id_column: str, resource_id: str) -> list[dict[str, str]]:
    """Tags in the response shape [{"TagKey": k, "TagValue": v}]."""
    rows = conn.execute(
        f"SELECT tag_key, tag_value FROM {table} WHERE {id_column} = ? ORDER BY tag_key",  # noqa: S608
        (resource_id,),
    ).fetchall()
    return [{"TagKey": r[0], "TagValue": r[1]} for r in rows]
