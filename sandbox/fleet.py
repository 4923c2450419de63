"""The simulated fleet: regions and ECS instances, as `serve --instances N` and `ctl instances add` create them.

Naming rules (documented here because `ctl` and the README refer to them):
- without a name every instance is called `sandbox-<seq>` (seq = its creation number, unique in the database);
- with a name and count == 1 the instance gets exactly that name;
- with a name and count > 1 the instances are `<name>-001`, `<name>-002`, … (the number is zero-padded to at
  least three digits, more when count >= 1000), numbered from 1 within the batch.
The host name is derived from the instance name (lowercase, characters outside `[a-z0-9-]` become `-`, at most
63 characters for Linux and 15 for Windows, as the real service limits them); a name that leaves nothing usable
falls back to the real default shape `iZ<instance id without "i-">Z` (lowercased, truncated for Windows).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence

from sandbox import store

DEFAULT_REGIONS = ("cn-hangzhou", "cn-beijing")

REGION_NAMES: dict[str, str] = {
    "cn-qingdao": "China (Qingdao)",
    "cn-beijing": "China (Beijing)",
    "cn-zhangjiakou": "China (Zhangjiakou)",
    "cn-huhehaote": "China (Hohhot)",
    "cn-wulanchabu": "China (Ulanqab)",
    "cn-hangzhou": "China (Hangzhou)",
    "cn-shanghai": "China (Shanghai)",
    "cn-nanjing": "China (Nanjing - Local Region)",
    "cn-fuzhou": "China (Fuzhou - Local Region)",
    "cn-shenzhen": "China (Shenzhen)",
    "cn-heyuan": "China (Heyuan)",
    "cn-guangzhou": "China (Guangzhou)",
    "cn-chengdu": "China (Chengdu)",
    "cn-hongkong": "China (Hong Kong)",
    "ap-northeast-1": "Japan (Tokyo)",
    "ap-northeast-2": "South Korea (Seoul)",
    "ap-southeast-1": "Singapore",
    "ap-southeast-3": "Malaysia (Kuala Lumpur)",
    "ap-southeast-5": "Indonesia (Jakarta)",
    "ap-southeast-6": "Philippines (Manila)",
    "ap-southeast-7": "Thailand (Bangkok)",
    "us-east-1": "US (Virginia)",
    "us-west-1": "US (Silicon Valley)",
    "eu-west-1": "UK (London)",
    "eu-central-1": "Germany (Frankfurt)",
    "me-east-1": "UAE (Dubai)",
    "me-central-1": "Saudi Arabia (Riyadh)",
}

INSTANCE_TYPE = "ecs.g7.large"
OS_NAMES = {
    "linux": "Alibaba Cloud Linux 3.2104 LTS 64 bit",
    "windows": "Windows Server 2022 Datacenter 64-bit (Chinese)",
}
AGENT_VERSIONS = {"linux": "2.2.3.857", "windows": "2.1.3.857"}

_REGION_RE = re.compile(r"^[a-z]{2,}(?:-[a-z0-9]+)+$")
_HOSTNAME_LIMITS = {"linux": 63, "windows": 15}


def _region_name(region_id: str) -> str:
    return REGION_NAMES.get(region_id, region_id)


def _check_region(region_id: str) -> None:
    if not _REGION_RE.match(region_id):
        raise ValueError(f"invalid region id {region_id!r} (expected e.g. 'cn-hangzhou')")


def _insert_regions(conn: sqlite3.Connection, region_ids: Sequence[str]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO regions(region_id, local_name) VALUES (?, ?)",
        [(r, _region_name(r)) for r in region_ids],
    )


def seed_regions(conn: sqlite3.Connection, region_ids: Sequence[str]) -> None:
    """Make sure every region exists (existing rows are left as they are)."""
    regions = list(dict.fromkeys(region_ids))
    for region_id in regions:
        _check_region(region_id)
    if conn.in_transaction:
        _insert_regions(conn, regions)
    else:
        with store.transaction(conn):
            _insert_regions(conn, regions)


def hostname_for(name: str, instance_id: str, os_type: str = "linux") -> str:
    """A valid host name derived from an instance name (see the module docstring)."""
    limit = _HOSTNAME_LIMITS.get(os_type, 63)
    host = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    host = re.sub(r"-{2,}", "-", host).strip("-")[:limit].strip("-")
    if not host or host.isdigit():
        host = f"iz{instance_id[2:]}z"[:limit]
    return host


def private_ip(index: int) -> str:
    """The index-th address (1-based) of 172.16.0.0/12, skipping .0, .1 (gateway) and .255 of every /24."""
    per_24 = 253  # .2 … .254
    block, host = divmod(index - 1, per_24)
    second, third = divmod(block, 256)
    if second > 15:
        raise ValueError("the sandbox ran out of private IP addresses (172.16.0.0/12)")
    return f"172.{16 + second}.{third}.{host + 2}"


def create_instances(
    conn: sqlite3.Connection,
    count: int,
    region_id: str,
    *,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    os_type: str = "linux",
    agent: bool = True,
    stopped: bool = False,
) -> list[str]:
    """Create `count` instances in one transaction (the region is added if missing); returns their IDs."""
    if count < 0:
        raise ValueError("count must not be negative")
    os_type = os_type.lower()
    if os_type not in OS_NAMES:
        raise ValueError(f"os_type must be 'linux' or 'windows', not {os_type!r}")
    _check_region(region_id)
    if count == 0:
        return []
    tag_items = list((tags or {}).items())
    ts = store.now()
    status = "Stopped" if stopped else "Running"
    heartbeat = ts if (agent and not stopped) else None
    width = max(3, len(str(count)))
    ids: list[str] = []
    rows: list[tuple[object, ...]] = []
    tag_rows: list[tuple[str, str, str]] = []
    with store.transaction(conn):
        _insert_regions(conn, [region_id])
        for n in range(1, count + 1):
            seq = store.next_seq(conn, "instances")
            ip_index = store.next_seq(conn, "private_ip")
            instance_id = store.new_id("i")
            if name is None:
                instance_name = f"sandbox-{seq}"
            elif count == 1:
                instance_name = name
            else:
                instance_name = f"{name}-{n:0{width}d}"
            rows.append((
                instance_id, region_id, f"{region_id}-h", instance_name,
                hostname_for(instance_name, instance_id, os_type), os_type, OS_NAMES[os_type], INSTANCE_TYPE,
                private_ip(ip_index), status, int(agent), int(agent),
                AGENT_VERSIONS[os_type] if agent else "", heartbeat, ts, seq,
            ))
            tag_rows.extend((instance_id, k, v) for k, v in tag_items)
            ids.append(instance_id)
        conn.executemany(
            "INSERT INTO instances(instance_id, region_id, zone_id, instance_name, hostname, os_type, os_name,"
            " instance_type, private_ip, status, agent_installed, agent_running, agent_version, last_heartbeat,"
            " created_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if tag_rows:
            conn.executemany(
                "INSERT INTO instance_tags(instance_id, tag_key, tag_value) VALUES (?, ?, ?)", tag_rows
            )
    return ids


class UnknownInstances(ValueError):
    """IDs that name no instance (or, for `stop_instances`, no Running one)."""

    def __init__(self, ids: Sequence[str], what: str) -> None:
        super().__init__(f"{what}: {', '.join(ids)}")
        self.ids = list(ids)


def stop_instances(conn: sqlite3.Connection, instance_ids: Sequence[str]) -> list[str]:
    """Stop Running instances at once, as StopInstance does (`ctl instances stop`: an instance stopped behind a
    client's back, e.g. from the console). The agent host then aborts their runs (`InstanceNotRunning`)."""
    ids = list(dict.fromkeys(instance_ids))
    with store.transaction(conn):
        idle = [i for i in ids if conn.execute("SELECT 1 FROM instances WHERE instance_id = ? AND status = 'Running'",
                                               (i,)).fetchone() is None]
        if idle:
            raise UnknownInstances(idle, "no Running instance")
        conn.executemany("UPDATE instances SET status = 'Stopped' WHERE instance_id = ?", [(i,) for i in ids])
    return ids


# ErrorInfo of work ended by a release (reference §4.1 / §4.2, old style).
RELEASED_RUN_INFO = "the instance has released when create task"
RELEASED_FILE_INFO = "the specified instance has been released"


def release_instances(conn: sqlite3.Connection, instance_ids: Sequence[str]) -> list[str]:
    """Release (delete) instances, as the service does when an instance is released while work is planned on it
    (`ctl instances release`). In one transaction:
    - the instance and its tags are gone (DescribeInstances no longer lists it; new runs get
      `InvalidInstance.NotFound`);
    - its runs that have not started (`Pending`) and the future runs of its schedules (`Scheduled`) end `Aborted` +
      `InstanceReleased`; its pending file writes likewise;
    - its running runs are left to the agent host, which kills them and records `Aborted` + `InstanceReleased`
      with the output so far, and never schedules them again (`Stopping` ones still end `Terminated`).
    The invocations keep their rows for this instance: DescribeInvocations still reports what happened there.
    unconfirmed (reference §4.1: InstanceReleased "released during the run", no status named): chose `Aborted`, the
    status the sandbox gives runs cut off by an instance that stops."""
    ids = list(dict.fromkeys(instance_ids))
    now = store.now()
    with store.transaction(conn):
        missing = [i for i in ids if conn.execute("SELECT 1 FROM instances WHERE instance_id = ?",
                                                  (i,)).fetchone() is None]
        if missing:
            raise UnknownInstances(missing, "no such instance")
        for iid in ids:
            conn.execute(
                "UPDATE invocation_instances SET status = 'Aborted', error_code = 'InstanceReleased', error_info = ?,"
                " finish_time = ?, update_time = ?, next_run_at = NULL"
                " WHERE instance_id = ? AND status IN ('Pending', 'Scheduled')",
                (RELEASED_RUN_INFO, now, now, iid),
            )
            conn.execute(
                "UPDATE file_task_instances SET status = 'Aborted', error_code = 'InstanceReleased', error_info = ?,"
                " finish_time = ?, update_time = ? WHERE instance_id = ? AND status = 'Pending'",
                (RELEASED_FILE_INFO, now, now, iid),
            )
            conn.execute("DELETE FROM instance_tags WHERE instance_id = ?", (iid,))
            conn.execute("DELETE FROM instances WHERE instance_id = ?", (iid,))
    return ids
