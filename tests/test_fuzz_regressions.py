"""Replay every committed fuzz input through its target (see fuzz/targets.py).

Files in tests/fuzz_regressions/ are named ``<target>-<what>``; each once crashed a parser
or is a hand-made seed for an edge its fuzzer should reach. A parser may only succeed or
raise ImgfmtError (the verify scanner may not raise at all).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "fuzz"))

import targets  # noqa: E402

CASES = sorted((REPO / "tests" / "fuzz_regressions").iterdir())


def test_every_target_has_seeds() -> None:
    prefixes = {case.name.split("-", 1)[0] for case in CASES}
    assert set(targets.TARGETS) <= prefixes


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
@pytest.mark.parametrize("target", sorted(targets.TARGETS))
def test_regression_input_only_raises_our_error(case: Path, target: str) -> None:
    # Every input goes through every target: a seed for one parser is hostile input for all.
    targets.run_target(target, case.read_bytes())
