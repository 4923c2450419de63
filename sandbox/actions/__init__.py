"""Action registry: every OpenAPI action is a function `handler(ctx, params) -> dict` registered here.

The server authenticates, checks read-only keys, validates RegionId, applies ClientToken idempotency and
adds RequestId; a handler only validates its own parameters, touches the database and returns the body.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.params import Params


@dataclass
class Context:
    db: sqlite3.Connection
    request_id: str
    region_id: str  # validated RegionId ('' for actions that take none, e.g. DescribeRegions)
    state_dir: Path
    isolation: str  # 'namespaces' | 'process'
    access_key_id: str
    poke: Callable[[], None]  # wake the agent host after writing work for it
    host_id: str = "ecs.aliyuncs.com"
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Context, Params], dict[str, Any]]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    handler: Handler
    mutating: bool
    needs_region: bool
    client_token: bool


ACTIONS: dict[str, ActionSpec] = {}


def action(
    name: str, *, mutating: bool = False, needs_region: bool = True, client_token: bool = False
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ACTIONS[name] = ActionSpec(name, handler, mutating, needs_region, client_token)
        return handler

    return register


def load_all() -> dict[str, ActionSpec]:
    """Import the modules that register actions (import side effect is the registration)."""
    from sandbox.actions import commands, files, instances  # noqa: F401

    return ACTIONS
