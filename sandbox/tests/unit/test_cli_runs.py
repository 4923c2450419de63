"""`ctl runs`: when command runs started and ended on tagged instances, and the most that ran at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox import cli, fleet, store
from sandbox.actions import Context
from sandbox.cli import peak_running, runs_on_tagged


def test_peak_running_counts_overlaps() -> None:
    assert peak_running([]) == 0
    assert peak_running([(0.0, 1.0)]) == 1
    assert peak_running([(0.0, 2.0), (1.0, 3.0), (1.5, 2.5)]) == 3
    assert peak_running([(0.0, 1.0), (2.0, 3.0), (4.0, 5.0)]) == 1


def test_peak_running_end_and_start_at_one_moment_do_not_overlap() -> None:
    assert peak_running([(0.0, 1.0), (1.0, 2.0)]) == 1


def test_peak_running_open_runs_stay_open() -> None:
    assert peak_running([(0.0, None), (5.0, 6.0), (7.0, None)]) == 2


def _run(ctx: Context, invoke_id: str, instance_id: str, start: float | None, end: float | None) -> None:
    ctx.db.execute(
        "INSERT INTO invocation_instances(invoke_id, instance_id, status, run_no, creation_time, start_time,"
        " finish_time, update_time) VALUES (?, ?, ?, 1, 0, ?, ?, 0)",
        (invoke_id, instance_id, "Success" if end else "Running", start, end))


def test_runs_on_tagged_reads_only_tagged_instances_that_started(ctx: Context) -> None:
    mine = fleet.create_instances(ctx.db, 3, "cn-hangzhou", tags={"roll": "a"})
    other = fleet.create_instances(ctx.db, 1, "cn-hangzhou", tags={"roll": "b"})
    _run(ctx, "t-1", mine[0], 10.0, 12.0)
    _run(ctx, "t-1", mine[1], 10.5, None)
    _run(ctx, "t-2", mine[2], None, None)          # never started (Pending)
    _run(ctx, "t-1", other[0], 10.2, 11.0)        # overlaps, but not tagged roll=a
    out = runs_on_tagged(ctx.db, "roll", "a")
    assert [(r["invoke_id"], r["instance_id"], r["end"]) for r in out["runs"]] == [
        ("t-1", mine[0], 12.0), ("t-1", mine[1], None)]
    assert out["runs"][1]["status"] == "Running"
    assert out["peak_running"] == 2
    assert runs_on_tagged(ctx.db, "roll", "none") == {"runs": [], "peak_running": 0}


def test_ctl_reads_a_state_dir_made_by_an_older_sandbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Tables added since (here dropped_replies) are created on the way, so `ctl stats` still answers."""
    conn = store.connect(tmp_path)
    store.init_schema(conn)
    conn.execute("DROP TABLE dropped_replies")
    conn.close()
    assert cli.main(["ctl", "--state-dir", str(tmp_path), "stats"]) == 0
    assert json.loads(capsys.readouterr().out)["dropped_replies"] == []
