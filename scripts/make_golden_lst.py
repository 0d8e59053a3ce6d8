"""Write the .lst golden files with mxnet 1.9.1's own ``tools/im2rec.py --list``.

Run it under the mxnet venv, from the repository root::

    make .venv-mxnet/.stamp
    .venv-mxnet/bin/python scripts/make_golden_lst.py

It builds the image tree described by ``tests/golden/lst/tree.txt`` in a temporary folder
(nested class folders, a class folder without images, names with spaces and non-ASCII
letters, upper-case extensions, non-image files, folder and file symlinks; every file is
empty, because listing reads only names), then runs ``im2rec.py --list`` on it once per
case in ``CASES`` and (re)writes ``tests/golden/lst/<case>/``: the list files im2rec wrote
under the prefix ``data`` and ``stdout.txt``, what it printed (``relative/folder label``
per class when recursive). ``tests/golden/lst/cases.json`` records each case's im2rec
options. The output is deterministic, so ``git diff`` stays empty unless im2rec (or a case,
or the tree) changed.

``tests/test_lst.py`` rebuilds the same tree and checks that ``imgfmt.formats.lst.make_lists``
writes the same file names with the same bytes, and a class map that agrees with
``stdout.txt``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "lst"

#: Case name -> im2rec.py options (after ``--list PREFIX ROOT``).
CASES: dict[str, list[str]] = {
    "default": [],
    "recursive": ["--recursive"],
    "recursive_no_shuffle": ["--recursive", "--no-shuffle"],
    "split_train_val_test": ["--recursive", "--train-ratio", "0.8", "--test-ratio", "0.1"],
    "chunks_train_val": ["--recursive", "--chunks", "3", "--train-ratio", "0.7"],
    # train + test == 1: no _val list at all.
    "split_no_val": ["--recursive", "--train-ratio", "0.7", "--test-ratio", "0.3"],
    # int(N * 0.9) + int(N * 0.1) < N: im2rec leaves the last image out of every list.
    "split_drops_one": ["--recursive", "--train-ratio", "0.9", "--test-ratio", "0.1"],
    "custom_exts": ["--recursive", "--exts", ".png", ".gif"],
    # 5 images in chunks of ceil(5 / 4) = 2: 2, 2, 1, and an empty fourth file.
    "chunks_with_empty": [
        "--recursive",
        "--no-shuffle",
        "--exts",
        ".gif",
        ".jpeg",
        "--chunks",
        "4",
    ],
    "top_level_custom_exts": ["--exts", ".gif", ".png"],
}

#: The prefix every case writes under, inside its own folder.
PREFIX = "data"


def read_recipe(path: Path) -> list[str]:
    """The entries of a tree recipe, comments and blank lines dropped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def build_tree(recipe: list[str], root: Path) -> None:
    """Create the files, folders and symlinks a recipe describes under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for entry in recipe:
        if " -> " in entry:
            link, target = entry.split(" -> ", 1)
            (root / link).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, root / link)
        elif entry.endswith("/"):
            (root / entry).mkdir(parents=True, exist_ok=True)
        else:
            (root / entry).parent.mkdir(parents=True, exist_ok=True)
            (root / entry).write_bytes(b"")


def im2rec_path() -> str:
    import mxnet  # only the mxnet venv has it

    return os.path.join(os.path.dirname(mxnet.__file__), "tools", "im2rec.py")


def main() -> int:
    recipe = read_recipe(GOLDEN / "tree.txt")
    im2rec = im2rec_path()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tree"
        build_tree(recipe, root)
        for stale in GOLDEN.iterdir():  # cases renamed or dropped since the last run
            if stale.is_dir():
                shutil.rmtree(stale)
        for case, options in CASES.items():
            out = GOLDEN / case
            out.mkdir(parents=True)
            proc = subprocess.run(
                [sys.executable, im2rec, "--list", str(out / PREFIX), str(root), *options],
                capture_output=True,
                text=True,
                encoding="utf-8",
                cwd=tmp,
                check=True,
            )
            (out / "stdout.txt").write_text(proc.stdout, encoding="utf-8")
            written = sorted(p.name for p in out.iterdir() if p.suffix == ".lst")
            print(f"{case}: {', '.join(written)}")
    (GOLDEN / "cases.json").write_text(json.dumps(CASES, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
