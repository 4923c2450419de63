"""The goal checks of benchmarks/inventory_listing.py (pure arithmetic on timed rows; no sandbox is started).

Kept with the sandbox's pytest suite, the one `bash scripts/test` runs for code outside the collection."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.inventory_listing import (
    ROWS,
    decide,
    median_interval,
    phase_pattern,
    split_output,
    summarize,
)

CALLS = {"uncached": 100, "cached": 0, "static": 0, "vendor": 1002}
REPO = Path(__file__).resolve().parents[3]


def _runs(trials: list[dict[str, float]], inside: list[tuple[float, float]] | None = None,
          static: float | None = 90.0) -> dict[str, list[dict[str, Any]]]:
    """`trials`: per trial the wall seconds of uncached, cached and vendor; `inside`: per trial the plugin's and
    the vendor's own listing seconds; the static row in the first trial only."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ROWS}
    for index, trial in enumerate(trials):
        for name in ("uncached", "cached", "vendor"):
            row: dict[str, Any] = {"wall_s": trial[name], "api_calls": CALLS[name],
                                   "describe_instances": CALLS[name], "calls_by_action": {}}
            if inside is not None and name != "cached":
                row["listing_s"] = inside[index][0 if name == "uncached" else 1]
            runs[name].append(row)
    if static is not None:
        runs["static"].append({"wall_s": static, "api_calls": 0, "describe_instances": 0, "calls_by_action": {}})
    return runs


def _goal(result: dict[str, Any], start: str) -> tuple[str, bool]:
    (found,) = [(label, met) for label, met in result["goals"].items() if label.startswith(start)]
    return found


def test_the_interval_is_the_sign_test_one() -> None:
    assert median_interval([3.0, 1.0, 2.0]) == {"median": 2.0, "n": 3, "low": None, "high": None, "coverage": 0.75}
    five = median_interval([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (five["low"], five["high"], five["coverage"]) == (1.0, 5.0, 0.938)
    nine = median_interval([float(v) for v in range(1, 10)])
    assert (nine["median"], nine["low"], nine["high"], nine["coverage"]) == (5.0, 2.0, 8.0, 0.961)


@pytest.mark.parametrize(("values", "verdict"), [
    ([0.1, 0.2, 0.3, 0.35, 0.4], "met"),
    ([0.41, 0.5, 0.9, 1.0, 1.2], "NOT met"),
    ([0.1, 0.2, 0.3, 0.35, 0.5], "undecided"),  # median 0.3, but one trial in five over the goal
    ([0.1, 0.1, 0.1], "undecided"),  # three trials cover 75 % only
])
def test_a_ratio_goal_is_met_only_when_the_whole_interval_is_under_it(values: list[float], verdict: str) -> None:
    assert decide(median_interval(values), 0.4) == verdict


def test_a_slow_listing_fails_even_when_the_static_inventory_is_slower() -> None:
    # static slower than the plugin (as on ansible-core 2.19): "uncached - static" is negative and proves nothing;
    # the listing itself (uncached - cached = 5 s) is 0.83x the vendor's 6 s in every trial
    trials = [{"uncached": 20.0 + d, "cached": 15.0 + d, "vendor": 6.0} for d in (0, 1, 2, 3, 4)]
    result = summarize(_runs(trials), 10_000, ["a", "b"])
    assert result["paired_differences_s"] == [5.0] * 5
    label, met = _goal(result, "whole processes")
    assert not met and label.endswith(", NOT met")
    assert result["not_gated"]["uncached - static <= 0.4x vendor"] is True


def test_pairing_by_trial_sees_a_listing_that_medians_of_noisy_rows_hide() -> None:
    # the load changes from trial to trial by more than the listing costs; within a trial the listing is 1 s of a
    # 6 s vendor run. Medians of the rows (16 - 14 = 2 s, 0.33x) would be rough; the pairs decide.
    trials = [{"uncached": base + 1.0, "cached": base, "vendor": 6.0} for base in (10.0, 20.0, 14.0, 30.0, 12.0)]
    result = summarize(_runs(trials, inside=[(1.0, 5.0)] * 5), 10_000, ["a", "b"])
    assert result["paired_differences_s"] == [1.0] * 5
    assert all(result["goals"].values())
    label, _ = _goal(result, "inside the processes")
    assert "median 0.20x" in label and label.endswith(", met")


def test_too_few_trials_cannot_pass() -> None:
    trials = [{"uncached": 17.0, "cached": 16.0, "vendor": 6.0}] * 3
    result = summarize(_runs(trials), 10_000, ["a", "b"])
    label, met = _goal(result, "whole processes")
    assert not met and "too few to decide" in label and label.endswith(", undecided")


def test_the_plugin_timing_line_is_read_from_the_verbose_output(tmp_path: Path) -> None:
    # the pattern and the line both from this checkout's plugins/module_utils/_inventory.py
    parent = tmp_path / "ansible_collections" / "alicloud_ops"
    parent.mkdir(parents=True)
    (parent / "cloud_assistant").symlink_to(REPO)
    pattern = phase_pattern(tmp_path)
    assert pattern is not None
    sys.path.insert(0, str(tmp_path))
    try:
        line = importlib.import_module("ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils."
                                       "_inventory").phase_timing(
            "alicloud_ops.cloud_assistant.ecs", {"a": {"instances": [{}] * 3}, "b": {"instances": [{}]}}, True,
            2.3451, 4, 4.5)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("ansible_collections")]:
            del sys.modules[name]
    stdout = (f"ansible-inventory [core 2.19.14]\n  config file = x\n{line}\n"
              "Parsed x.ecs.yml inventory source with auto plugin\n"
              '{\n    "_meta": {"hostvars": {}}\n}\n')
    out, inside = split_output("uncached", stdout, pattern)
    assert out == {"_meta": {"hostvars": {}}} and inside == {"listing_s": 2.345, "populate_s": 4.5}
    assert split_output("uncached", '{"_meta": {}}', None) == ({"_meta": {}}, {})
    out, inside = split_output("vendor", '{"hosts": 3, "api_calls": 2, "seconds": 1.5}\n', None)
    assert out["hosts"] == 3 and inside == {"listing_s": 1.5}


def test_without_the_static_row_the_gated_goals_stay() -> None:
    trials = [{"uncached": 17.0, "cached": 16.0, "vendor": 6.0 + n} for n in range(5)]
    result = summarize(_runs(trials, static=None), 10_000, ["a", "b"])
    assert "static" not in result["rows"] and result["not_gated"] == {} and result["cached_vs_static"] is None
    assert len(result["goals"]) == 3 and all(result["goals"].values())
