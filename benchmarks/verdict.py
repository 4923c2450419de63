"""The end of every benchmark report: one line per goal, then whether all were met (the process exit status)."""

from __future__ import annotations

from collections.abc import Iterable


def print_verdict(goals: dict[str, bool], word: str = "goals", notes: Iterable[str] = ()) -> int:
    """Print `- <goal>: met|NOT met` for each goal, then `notes` (lines that do not decide the verdict), then
    `<word> met` or `<word> NOT met`; return 0 when every goal is met, else 1."""
    print()
    for label, met in goals.items():
        print(f"- {label}: {'met' if met else 'NOT met'}")
    for line in notes:
        print(line)
    ok = all(goals.values())
    print()
    print(f"{word} met" if ok else f"{word} NOT met")
    return 0 if ok else 1
