"""Run every command on a fixed sample and print a SHA-256 digest of every file it makes.

For refactoring: run it before and after a change and compare (`diff`); the outputs of the
existing formats must not change by a byte. Deterministic: the sample images, the options
and the manifests' creation date are fixed.

Usage: python scripts/flows_digest.py [WORKDIR]   (default: a temporary folder)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATE = "2026-01-01T00:00:00"

#: (command line, expected exit status); paths are relative to the work folder.
FLOWS: list[tuple[list[str], int]] = [
    (["lst-gen", "photos", "data/photos", "--recursive", "--train-ratio", "0.8"], 0),
    (
        [
            "lst-gen",
            "photos",
            "data/chunked",
            "--recursive",
            "--chunks",
            "3",
            "--test-ratio",
            "0.2",
            "--train-ratio",
            "0.6",
        ],
        0,
    ),  # fmt: skip
    (
        [
            "pack",
            "data/photos_train.lst",
            "data/train.rec",
            "--root",
            "photos",
            "--resize",
            "64",
            "--quality",
            "90",
            "-j",
            "2",
        ],
        1,
    ),  # fmt: skip
    (
        [
            "pack",
            "data/photos_val.lst",
            "data/val.rec",
            "--root",
            "photos",
            "--resize",
            "64",
            "--center-crop",
            "--encoding",
            ".png",
            "--allow-skip",
        ],
        0,
    ),  # fmt: skip
    (
        [
            "pack",
            "photos",
            "data/folder.rec",
            "--resize",
            "48",
            "--color",
            "0",
            "--chunks",
            "2",
            "--allow-skip",
        ],
        0,
    ),  # fmt: skip
    (
        [
            "pack",
            "photos",
            "data/sharded.rec",
            "--pass-through",
            "--shard-size",
            "60kB",
            "--allow-skip",
        ],
        0,
    ),  # fmt: skip
    (
        [
            "pack",
            "data/multi.lst",
            "data/multi.rec",
            "--root",
            "photos",
            "--pack-label",
            "--resize",
            "32",
        ],
        0,
    ),  # fmt: skip
    (["unpack", "data/val.rec", "unpacked/val"], 0),
    (
        [
            "pack",
            "unpacked/val/val.lst",
            "data/val-again.rec",
            "--root",
            "unpacked/val",
            "--pass-through",
        ],
        0,
    ),  # fmt: skip
    (["unpack", "data/multi.rec", "unpacked/multi"], 0),
    (["split", "data/train.rec", "data/train-split", "--train-ratio", "0.75"], 0),
    (
        [
            "split",
            "data/photos_train.lst",
            "data/lst-split",
            "--train-ratio",
            "0.5",
            "--test-ratio",
            "0.25",
        ],
        0,
    ),  # fmt: skip
    (
        [
            "manifest-gen",
            "data/photos_train.lst",
            "data/train.manifest",
            "--s3-prefix",
            "s3://my-bucket/photos",
            "--creation-date",
            DATE,
        ],
        0,
    ),  # fmt: skip
    (
        [
            "manifest-gen",
            "photos",
            "data/folder.manifest",
            "--s3-prefix",
            "s3://b/p",
            "--creation-date",
            DATE,
        ],
        0,
    ),  # fmt: skip
    (["split", "data/train.manifest", "data/manifest-split", "--train-ratio", "0.5"], 0),
    (["manifest-to-lst", "data/train.manifest", "data/from-manifest.lst"], 0),
    (
        [
            "pack",
            "data/photos_val.lst",
            "data/val.jsonl",
            "--root",
            "photos",
            "--resize",
            "40",
            "--allow-skip",
        ],
        0,
    ),  # fmt: skip
    (["unpack", "data/val.jsonl", "unpacked/jsonl"], 0),
    (["split", "data/val.jsonl", "data/jsonl-split", "--train-ratio", "0.5"], 0),
    (
        [
            "pack",
            "photos",
            "data/digits.rec",
            "--format",
            "recordio-protobuf",
            "--size",
            "12x10",
            "--color",
            "0",
            "--allow-skip",
        ],
        0,
    ),  # fmt: skip
    (["unpack", "data/digits.rec", "unpacked/digits"], 0),
    (["split", "data/digits.rec", "data/digits-split", "--train-ratio", "0.5"], 0),
    (["predictions", "data/val.jsonl.out", "data/val.jsonl", "-o", "data/val-pred.csv"], 0),
]


def imgfmt(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgfmt", *args], cwd=cwd, capture_output=True, text=True
    )


def build_sample(work: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            str(HERE / "make_samples.py"),
            str(work / "photos"),
            "--classes",
            "3",
            "--per-class",
            "6",
            "--mixed",
        ],  # fmt: skip
        check=True,
        capture_output=True,
    )
    (work / "photos" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (work / "data").mkdir()


def main() -> int:
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="flows-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    build_sample(work)
    failures = 0
    for args, expected in FLOWS:
        if args[0] == "pack" and args[1] == "data/multi.lst":
            # Two labels a line (the class and the parity of the index).
            lines = (work / "data" / "photos_val.lst").read_text().splitlines()
            multi = []
            for line in lines:
                index, label, path = line.split("\t")
                multi.append(f"{index}\t{label}\t{int(index) % 2}.000000\t{path}")
            (work / "data" / "multi.lst").write_text("\n".join(multi) + "\n")
        if args[0] == "predictions":
            rows = (work / "data" / "val.jsonl").read_text().splitlines()
            with open(work / "data" / "val.jsonl.out", "w") as out:
                for number, row in enumerate(rows):
                    label = int(json.loads(row)["label"])
                    guess = (label + 1) % 3 if number % 3 == 0 else label
                    out.write(json.dumps({"prediction": [0.9 if c == guess else 0.05 for c in
                                                         range(3)]}) + "\n")  # fmt: skip
        done = imgfmt(args, work)
        status = "ok" if done.returncode == expected else "UNEXPECTED"
        failures += done.returncode != expected
        print(f"# {status} exit {done.returncode}: imgfmt {' '.join(args)}")
        if done.returncode != expected:
            print(done.stderr.rstrip())
    for path in sorted(work.rglob("*")):
        if path.is_file() and path.parts[len(work.parts)] != "photos":
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            print(f"{digest}  {path.relative_to(work)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
