"""Fixtures shared by the sandbox's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import fleet, store
from sandbox.actions import Context, load_all


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    load_all()
    conn = store.connect(tmp_path)
    store.init_schema(conn)
    fleet.seed_regions(conn, fleet.DEFAULT_REGIONS)
    pokes: list[int] = []
    c = Context(db=conn, request_id="R", region_id="cn-hangzhou", state_dir=tmp_path, isolation="process",
                access_key_id="AK", poke=lambda: pokes.append(1))
    c.extra["pokes"] = pokes
    yield c
    conn.close()
