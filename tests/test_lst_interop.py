"""imgfmt.formats.lst against mxnet 1.9.1's im2rec.py itself, on a freshly made random tree.

The golden files in tests/golden/lst pin one tree; this test draws a new one each run (the
seed is in every failure message) and has the live im2rec.py list it with several option
sets, through its own ``parse_args`` and ``make_list``, in one python process (importing
mxnet is the slow part). It also feeds im2rec's ``read_list`` a list that is odd but valid
and checks that ``read_lst`` reads the same entries.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from test_lst import im2rec_options

from imgfmt.formats.lst import LstEntry, make_lists, read_lst

pytestmark = pytest.mark.interop

#: Name pieces: code-point order traps (upper before lower, digits, non-ASCII last), spaces.
NAME_PARTS = ["a", "B", "z", "Zz", "10", "9", "été", "日本", "x y", "_", "-", "Ω"]
EXTS = [".jpg", ".JPG", ".jpeg", ".png", ".PNG", ".gif", ".txt", ".jpg.txt", ""]

#: Runs im2rec's own argument parsing and list making once per argv, then read_list.
IM2REC_SNIPPET = """
import contextlib, importlib.util, io, json, sys
im2rec_py, jobs, lst_path = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
spec = importlib.util.spec_from_file_location("im2rec", im2rec_py)
im2rec = importlib.util.module_from_spec(spec)
spec.loader.exec_module(im2rec)
printed = []
for argv in jobs:
    sys.argv = ["im2rec.py", *argv]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        im2rec.make_list(im2rec.parse_args())
    printed.append(out.getvalue())
with contextlib.redirect_stdout(io.StringIO()):
    items = list(im2rec.read_list(lst_path))
print(json.dumps({"printed": printed, "read": items}))
"""


def random_name(rng: random.Random) -> str:
    return "".join(rng.choice(NAME_PARTS) for _ in range(rng.randint(1, 3)))


def random_tree(root: Path, rng: random.Random) -> None:
    """Class folders up to 3 deep, some empty, files of mixed extensions, a folder symlink."""
    folders = [root]
    for _ in range(rng.randint(3, 9)):
        parent = rng.choice(folders)
        if len(parent.relative_to(root).parts) < 3:
            folder = parent / random_name(rng)
            folder.mkdir(exist_ok=True)
            folders.append(folder)
    for folder in folders:
        for _ in range(rng.randint(0, 6)):
            path = folder / (random_name(rng) + rng.choice(EXTS))
            if not path.exists():  # an extension-less name may be a folder's
                path.write_bytes(b"")
    if len(folders) > 1:
        target = rng.choice(folders[1:])
        os.symlink(target, root / "zz link")


def option_sets(rng: random.Random) -> list[list[str]]:
    train = round(rng.uniform(0.3, 1.0), 2)
    test = round(rng.uniform(0.0, 1.0 - train), 2)
    return [
        [],
        ["--recursive"],
        ["--recursive", "--train-ratio", str(train), "--test-ratio", str(test)],
        ["--recursive", "--chunks", str(rng.randint(2, 5)), "--train-ratio", str(train)],
        ["--recursive", "--no-shuffle", "--exts", ".png", ".gif"],
    ]


def test_lists_match_live_im2rec(
    run_mxnet: Callable[..., str], im2rec_py: str, tmp_path: Path
) -> None:
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    root = tmp_path / "tree"
    root.mkdir()
    random_tree(root, rng)
    (root / "top.jpg").write_bytes(b"")  # the non-recursive case needs one top-level image
    (root / "top.gif").write_bytes(b"")  # and so does the .png/.gif case
    cases = option_sets(rng)

    odd_list = tmp_path / "odd.lst"
    odd_list.write_bytes(
        "  0 \t 1.5\t2 \t été/x  y.jpg \r\n"
        "\n"
        "7\t-3\t1e2\tnan\ta b\r\n"
        "3\t0.000000\t日本/Ω.png\n".encode()
    )
    jobs = [[str(tmp_path / f"im2rec{i}" / "data"), str(root), *o] for i, o in enumerate(cases)]
    for i in range(len(cases)):
        (tmp_path / f"im2rec{i}").mkdir()
    out = run_mxnet(IM2REC_SNIPPET, im2rec_py, json.dumps(jobs), str(odd_list))
    report = json.loads(out.splitlines()[-1])

    for i, options in enumerate(cases):
        ours = tmp_path / f"ours{i}"
        ours.mkdir()
        result = make_lists(str(root), str(ours / "data"), **im2rec_options(options))
        theirs = tmp_path / f"im2rec{i}"
        context = f"seed {seed}, options {options}"
        assert sorted(p.name for p in ours.glob("*.lst")) == sorted(
            p.name for p in theirs.glob("*.lst")
        ), context
        for name in (p.name for p in theirs.glob("*.lst")):
            assert (ours / name).read_bytes() == (theirs / name).read_bytes(), f"{name}: {context}"
        if "--recursive" in options:
            printed = [line.rsplit(" ", 1) for line in report["printed"][i].splitlines()]
            names = {int(label): "tree" if folder == "." else folder for folder, label in printed}
            assert result.classes == names, context

    def normalise(label: float) -> object:
        return "nan" if label != label else label

    theirs_read = [[item[0], item[1], [normalise(x) for x in item[2:]]] for item in report["read"]]
    parsed = read_lst(str(odd_list))
    ours_read = [[e.index, e.path, [normalise(x) for x in e.labels]] for e in parsed]
    assert ours_read == theirs_read
    assert list(read_lst(str(odd_list)))[0] == LstEntry(0, (1.5, 2.0), "été/x  y.jpg")
