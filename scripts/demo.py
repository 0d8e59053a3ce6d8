"""`make demo`: build a small sample image folder and run the main flow on it, end to end.

Each step is printed as the shell command a user would type, then its output.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(*args: str, check: bool = True) -> int:
    print(f"\n$ imgfmt {shlex.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "imgfmt", *args])
    if check and proc.returncode != 0:
        sys.exit(f"demo step failed with exit status {proc.returncode}")
    return proc.returncode


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo").resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.chdir(out)
    print("$ python scripts/make_samples.py photos --classes 4 --per-class 12 --mixed")
    subprocess.run(
        [
            sys.executable,
            str(HERE / "make_samples.py"),
            "photos",
            "--classes",
            "4",
            "--per-class",
            "12",
            "--mixed",
        ],
        check=True,
    )
    # A broken image among good ones: imgfmt reports it and carries on.
    Path("photos/cat/broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")

    Path("data").mkdir()
    print("$ mkdir data")
    run("lst-gen", "photos", "data/photos", "--recursive", "--train-ratio", "0.8")
    run(
        "pack",
        "data/photos_train.lst",
        "data/train.rec",
        "--root",
        "photos",
        "--resize",
        "128",
        "--quality",
        "90",
        check=False,
    )
    run(
        "pack",
        "data/photos_val.lst",
        "data/val.rec",
        "--root",
        "photos",
        "--resize",
        "128",
        "--quality",
        "90",
        "--allow-skip",
    )
    run("unpack", "data/val.rec", "unpacked")
    run("pack", "unpacked/val.lst", "data/val-again.rec", "--root", "unpacked", "--pass-through")
    same = Path("data/val.rec").read_bytes() == Path("data/val-again.rec").read_bytes()
    print(f"\nround trip unpack -> pack --pass-through is byte-identical: {same}")
    print(f"\nWhat the demo made, under {out}:")
    for path in sorted(Path(".").rglob("*")):
        if path.is_file() and path.parts[0] not in ("photos", "unpacked"):
            print(f"  {path}  ({path.stat().st_size} bytes)")
    if not same:
        sys.exit("round trip differed")


if __name__ == "__main__":
    main()
