from __future__ import annotations

import ipaddress
import re
import time

import pytest

from sandbox import fleet, store


@pytest.fixture
def conn(tmp_path):
    c = store.connect(tmp_path)
    store.init_schema(c)
    yield c
    c.close()


def test_seed_regions_idempotent(conn):
    fleet.seed_regions(conn, fleet.DEFAULT_REGIONS)
    fleet.seed_regions(conn, ["cn-hangzhou", "cn-shanghai", "xx-nowhere-9"])
    rows = dict(conn.execute("SELECT region_id, local_name FROM regions").fetchall())
    assert rows == {
        "cn-hangzhou": "China (Hangzhou)",
        "cn-beijing": "China (Beijing)",
        "cn-shanghai": "China (Shanghai)",
        "xx-nowhere-9": "xx-nowhere-9",
    }


def test_seed_regions_inside_transaction(conn):
    with store.transaction(conn):
        fleet.seed_regions(conn, ["cn-shenzhen"])
    assert conn.execute("SELECT local_name FROM regions").fetchone()[0] == "China (Shenzhen)"


def test_seed_regions_rejects_bad_id(conn):
    with pytest.raises(ValueError):
        fleet.seed_regions(conn, ["Hangzhou!"])


def test_create_linux_defaults(conn):
    ids = fleet.create_instances(conn, 3, "cn-hangzhou")
    assert len(ids) == 3 and len(set(ids)) == 3
    rows = conn.execute("SELECT * FROM instances ORDER BY seq").fetchall()
    assert [r["instance_id"] for r in rows] == ids
    for n, r in enumerate(rows, start=1):
        assert re.fullmatch(r"i-[a-z0-9]{20}", r["instance_id"])
        assert r["region_id"] == "cn-hangzhou"
        assert r["zone_id"] == "cn-hangzhou-h"
        assert r["instance_type"] == "ecs.g7.large"
        assert r["os_type"] == "linux"
        assert r["os_name"] == "Alibaba Cloud Linux 3.2104 LTS 64 bit"
        assert r["status"] == "Running"
        assert r["agent_installed"] == 1 and r["agent_running"] == 1
        assert r["agent_install_pending"] == 0
        assert r["agent_version"] == "2.2.3.857"
        assert r["last_heartbeat"] is not None and abs(r["last_heartbeat"] - time.time()) < 5
        assert r["boot_count"] == 1
        assert r["seq"] == n
        assert r["instance_name"] == f"sandbox-{n}"
        assert r["hostname"] == f"sandbox-{n}"
        assert ipaddress.ip_address(r["private_ip"]) in ipaddress.ip_network("172.16.0.0/12")


def test_create_windows_no_agent_stopped(conn):
    (iid,) = fleet.create_instances(conn, 1, "cn-beijing", os_type="windows", agent=False, stopped=True)
    r = conn.execute("SELECT * FROM instances WHERE instance_id = ?", (iid,)).fetchone()
    assert r["os_type"] == "windows"
    assert r["os_name"] == "Windows Server 2022 Datacenter 64-bit (Chinese)"
    assert r["status"] == "Stopped"
    assert r["agent_installed"] == 0 and r["agent_running"] == 0
    assert r["agent_version"] == ""
    assert r["last_heartbeat"] is None
    # the region is added when missing
    assert conn.execute("SELECT COUNT(*) FROM regions WHERE region_id = 'cn-beijing'").fetchone()[0] == 1


def test_windows_agent_version_and_stopped_has_no_heartbeat(conn):
    (iid,) = fleet.create_instances(conn, 1, "cn-hangzhou", os_type="windows", stopped=True)
    r = conn.execute("SELECT * FROM instances WHERE instance_id = ?", (iid,)).fetchone()
    assert r["agent_version"] == "2.1.3.857"
    assert r["last_heartbeat"] is None


def test_names_and_hostnames(conn):
    (single,) = fleet.create_instances(conn, 1, "cn-hangzhou", name="Web Server_01")
    batch = fleet.create_instances(conn, 3, "cn-hangzhou", name="db")
    names = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT instance_id, instance_name, hostname FROM instances")}
    assert names[single] == ("Web Server_01", "web-server-01")
    assert [names[i] for i in batch] == [("db-001", "db-001"), ("db-002", "db-002"), ("db-003", "db-003")]


def test_hostname_rules():
    assert fleet.hostname_for("A" * 100, "i-abc") == "a" * 63
    assert fleet.hostname_for("my windows box", "i-abc", "windows") == "my-windows-box"[:15].strip("-")
    assert len(fleet.hostname_for("my windows box", "i-abc", "windows")) <= 15
    assert fleet.hostname_for("服务器", "i-bp1xyz") == "izbp1xyzz"
    assert fleet.hostname_for("---", "i-bp1xyz") == "izbp1xyzz"
    for host in (fleet.hostname_for(n, "i-q") for n in ["x", "a.b", "UP", "a--b", "-a-"]):
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", host)


def test_tags_and_unique_ips(conn):
    ids = fleet.create_instances(conn, 5, "cn-hangzhou", tags={"env": "prod", "team": "a"})
    ids += fleet.create_instances(conn, 5, "cn-beijing")
    tags = conn.execute("SELECT instance_id, tag_key, tag_value FROM instance_tags ORDER BY tag_key").fetchall()
    assert len(tags) == 10
    ips = [r[0] for r in conn.execute("SELECT private_ip FROM instances")]
    assert len(set(ips)) == 10


def test_private_ip_sequence():
    assert fleet.private_ip(1) == "172.16.0.2"
    assert fleet.private_ip(253) == "172.16.0.254"
    assert fleet.private_ip(254) == "172.16.1.2"
    assert fleet.private_ip(253 * 256 + 1) == "172.17.0.2"
    with pytest.raises(ValueError):
        fleet.private_ip(253 * 256 * 16 + 1)


def test_bad_arguments(conn):
    with pytest.raises(ValueError):
        fleet.create_instances(conn, -1, "cn-hangzhou")
    with pytest.raises(ValueError):
        fleet.create_instances(conn, 1, "cn-hangzhou", os_type="freebsd")
    assert fleet.create_instances(conn, 0, "cn-hangzhou") == []
    assert conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0] == 0


def test_thousand_instances_in_one_batch(conn):
    ids = fleet.create_instances(conn, 1000, "cn-hangzhou", tags={"k": "v"})
    assert len(set(ids)) == 1000
    assert conn.execute("SELECT COUNT(DISTINCT private_ip) FROM instances").fetchone()[0] == 1000
    assert conn.execute("SELECT MAX(seq) FROM instances").fetchone()[0] == 1000


def test_seq_continues_across_batches(conn):
    fleet.create_instances(conn, 2, "cn-hangzhou")
    fleet.create_instances(conn, 2, "cn-beijing")
    assert [r[0] for r in conn.execute("SELECT seq FROM instances ORDER BY seq")] == [1, 2, 3, 4]
    assert [r[0] for r in conn.execute("SELECT instance_name FROM instances ORDER BY seq")] == [
        "sandbox-1", "sandbox-2", "sandbox-3", "sandbox-4"]


def _row(conn, invoke_id, iid, status, next_run_at=None):
    conn.execute("INSERT INTO invocation_instances(invoke_id, instance_id, status, next_run_at, creation_time,"
                 " update_time) VALUES (?, ?, ?, ?, 0, 0)", (invoke_id, iid, status, next_run_at))


def test_release_ends_planned_work_and_forgets_the_instance(conn):
    gone, kept = fleet.create_instances(conn, 2, "cn-hangzhou", tags={"app": "web"})
    for invoke_id, status in (("t-pending", "Pending"), ("t-sched", "Scheduled"), ("t-running", "Running"),
                              ("t-done", "Success")):
        _row(conn, invoke_id, gone, status, next_run_at=123.0)
        _row(conn, invoke_id, kept, status, next_run_at=123.0)
    conn.execute("INSERT INTO file_task_instances(invoke_id, instance_id, status, creation_time, update_time)"
                 " VALUES ('f-1', ?, 'Pending', 0, 0)", (gone,))

    assert fleet.release_instances(conn, [gone, gone]) == [gone]

    assert [r[0] for r in conn.execute("SELECT instance_id FROM instances")] == [kept]
    assert [r[0] for r in conn.execute("SELECT instance_id FROM instance_tags")] == [kept]
    rows = {r["invoke_id"]: r for r in conn.execute("SELECT * FROM invocation_instances WHERE instance_id = ?",
                                                     (gone,))}
    for invoke_id in ("t-pending", "t-sched"):
        assert (rows[invoke_id]["status"], rows[invoke_id]["error_code"], rows[invoke_id]["next_run_at"]) == (
            "Aborted", "InstanceReleased", None)
        assert rows[invoke_id]["error_info"] == fleet.RELEASED_RUN_INFO
        assert rows[invoke_id]["finish_time"] is not None
    # a running run is the agent host's to kill (it keeps the output so far); a finished one is history
    assert rows["t-running"]["status"] == "Running" and rows["t-done"]["status"] == "Success"
    others = {r[0] for r in conn.execute("SELECT status FROM invocation_instances WHERE instance_id = ?", (kept,))}
    assert others == {"Pending", "Scheduled", "Running", "Success"}
    f = conn.execute("SELECT status, error_code, error_info FROM file_task_instances").fetchone()
    assert tuple(f) == ("Aborted", "InstanceReleased", fleet.RELEASED_FILE_INFO)


def test_release_and_stop_refuse_unknown_ids_and_change_nothing(conn):
    (iid,) = fleet.create_instances(conn, 1, "cn-hangzhou")
    with pytest.raises(fleet.UnknownInstances) as err:
        fleet.release_instances(conn, [iid, "i-nosuch"])
    assert err.value.ids == ["i-nosuch"]
    assert conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0] == 1
    assert fleet.stop_instances(conn, [iid]) == [iid]
    assert conn.execute("SELECT status FROM instances").fetchone()[0] == "Stopped"
    with pytest.raises(fleet.UnknownInstances, match="no Running instance"):
        fleet.stop_instances(conn, [iid])
