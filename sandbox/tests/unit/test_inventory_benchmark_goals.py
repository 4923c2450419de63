"""The goal checks of benchmarks/inventory_listing.py (pure arithmetic on timed rows; no sandbox is started).

Kept with the sandbox's pytest suite, the one `bash scripts/test` runs for code outside the collection."""

from __future__ import annotations

from typing import Any

from benchmarks.inventory_listing import ROWS, summarize


def _runs(**seconds: float) -> dict[str, list[dict[str, Any]]]:
    calls = {"uncached": 100, "cached": 0, "static": 0, "vendor": 1002}
    return {name: [{"wall_s": seconds[name], "api_calls": calls[name], "describe_instances": calls[name],
                    "calls_by_action": {}}] for name in ROWS}


def test_a_slow_listing_fails_even_when_the_static_inventory_is_slower() -> None:
    # static slower than the plugin (as on ansible-core 2.19): "uncached - static" is negative and proves nothing;
    # the listing itself (uncached - cached = 5 s) is 0.83x the vendor's 6 s
    result = summarize(_runs(uncached=20.0, cached=15.0, static=90.0, vendor=6.0), 10_000, ["a", "b"])
    assert result["listing_s"] == 5.0
    assert result["goals"]["uncached - cached <= 0.4x vendor"] is False
    assert result["not_gated"]["uncached - static <= 0.4x vendor"] is True


def test_a_fast_listing_meets_the_goals() -> None:
    result = summarize(_runs(uncached=17.0, cached=16.0, static=90.0, vendor=6.0), 10_000, ["a", "b"])
    assert all(result["goals"].values())
    assert result["listing_vs_vendor"] == round(1.0 / 6.0, 3)
