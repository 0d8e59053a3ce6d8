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


def simulate_predictions(dataset: Path, output: Path) -> None:
    """Write what a SageMaker batch transform of an image classifier would return for
    ``dataset`` (one ``{"prediction": [...]}`` line per input line): right for most images,
    wrong for every seventh, so the summary has something to show."""
    import json

    lines = dataset.read_text(encoding="utf-8").splitlines()
    labels = [int(json.loads(line)["label"]) for line in lines]
    classes = max(labels) + 1
    with output.open("w", encoding="utf-8") as out:
        for number, label in enumerate(labels):
            guess = (label + 1) % classes if number % 7 == 3 else label
            probabilities = [round(0.1 / (classes - 1), 4)] * classes
            probabilities[guess] = 0.9
            out.write(json.dumps({"prediction": probabilities}) + "\n")
    print(f"\n(simulated a batch transform of {dataset}: wrote {output})")


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
    print("(photos/cat/broken.jpg is not a real JPEG: pack will name it, pack the rest and exit 3;")
    print(" the second pack passes --allow-skip to accept that)")
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
    run("verify", "data/train.rec", "data/val.rec", "--decode")
    run("unpack", "data/val.rec", "unpacked")
    run("pack", "unpacked/val.lst", "data/val-again.rec", "--root", "unpacked", "--pass-through")
    same = Path("data/val.rec").read_bytes() == Path("data/val-again.rec").read_bytes()
    print(f"\nround trip unpack -> pack --pass-through is byte-identical: {same}")
    run("split", "data/train.rec", "data/split", "--train-ratio", "0.7", "--test-ratio", "0.15")
    # What the three splits hold, and whether any image is in two of them (exit 1 if so).
    splits = [f"data/split_{name}.rec" for name in ("train", "val", "test")]
    run("stats", *splits)
    # A leak, made on purpose: one training photo listed in the validation list too.
    train_lines = Path("data/photos_train.lst").read_text(encoding="utf-8").splitlines()
    leaky = Path("data/photos_val.lst").read_text(encoding="utf-8") + train_lines[0] + "\n"
    Path("data/leaky_val.lst").write_text(leaky, encoding="utf-8")
    print("\n(data/leaky_val.lst: the validation list plus one training photo; stats finds it)")
    run("stats", "data/photos_train.lst", "data/leaky_val.lst", "--root", "photos",
        "--classes", "data/photos.classes.tsv", check=False)  # fmt: skip
    run("preview", "data/train.rec", "-o", "data/train-preview.png", "--per-class", "6")
    # The same dataset for PyTorch users: WebDataset shards, checked, and back, unchanged.
    run("convert", "data/train.rec", "data/train.tar", "--shard-records", "16")
    run("verify", "data/train.tar", "--decode")
    run("convert", "data/train.tar", "data/train-again.rec")
    again = Path("data/train.rec").read_bytes() == Path("data/train-again.rec").read_bytes()
    print(f"\nround trip .rec -> WebDataset -> .rec is byte-identical: {again}")
    same = same and again
    run("manifest-gen", "data/photos_train.lst", "data/train.manifest",
        "--s3-prefix", "s3://my-bucket/photos")  # fmt: skip

    # Batch inference: the images as JSON Lines, a (simulated) batch transform output, and
    # the predictions joined back to the images.
    run("pack", "data/photos_val.lst", "data/val.jsonl", "--root", "photos", "--resize", "128",
        "--allow-skip")  # fmt: skip
    simulate_predictions(Path("data/val.jsonl"), Path("data/val.jsonl.out"))
    run("predictions", "data/val.jsonl.out", "data/val.jsonl", "-o", "data/val-predictions.csv",
        "--confusion", "data/val-confusion.csv", "--plot", "data/val-confusion.png")  # fmt: skip
    print(f"\nWhat the demo made, under {out}:")
    for path in sorted(Path(".").rglob("*")):
        if path.is_file() and path.parts[0] not in ("photos", "unpacked"):
            print(f"  {path}  ({path.stat().st_size} bytes)")
    if not same:
        sys.exit("round trip differed")


if __name__ == "__main__":
    main()
