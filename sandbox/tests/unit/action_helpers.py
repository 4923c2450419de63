"""Calling action handlers directly, with the parameters in SDK wire form (shared by the action unit tests)."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.actions import ACTIONS, Context
from sandbox.errors import ApiError
from sandbox.params import Params


def call(ctx: Context, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return ACTIONS[action].handler(ctx, Params({k: str(v) for k, v in (params or {}).items()}))


def fail(ctx: Context, action: str, params: dict[str, Any] | None = None) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(ctx, action, params)
    return info.value


def ids_param(ids: list[str]) -> dict[str, str]:
    return {f"InstanceId.{n}": i for n, i in enumerate(ids, start=1)}
