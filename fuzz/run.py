"""Coverage-guided fuzzing of one target with atheris: ``python fuzz/run.py TARGET [FLAGS]``.

A crash writes ``crash-<sha1>`` in the current folder: copy it into
``tests/fuzz_regressions/<TARGET>-<name>`` so the test suite replays it forever.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import atheris  # noqa: E402

with atheris.instrument_imports():
    import targets  # noqa: E402


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit(f"usage: python fuzz/run.py {{{','.join(targets.TARGETS)}}} [libFuzzer flags]")
    name = sys.argv.pop(1)
    here = os.path.dirname(os.path.abspath(__file__))
    # libFuzzer adds new inputs to the first corpus folder: a scratch one (gitignored); the
    # committed regressions are read as seeds only.
    work = os.path.join(here, "corpus", name)
    os.makedirs(work, exist_ok=True)
    seeds = os.path.join(here, "..", "tests", "fuzz_regressions")
    if not any(not a.startswith("-") for a in sys.argv[1:]):
        sys.argv += [work, seeds]
    atheris.Setup(sys.argv, lambda data: targets.run_target(name, data))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
