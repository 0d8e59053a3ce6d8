"""stats: what inputs hold, and the images that leak between them (exact and near copies)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from helpers import hostile, samples
from PIL import Image

from imgfmt.cli import cli

CLASSES = ("bird", "cat", "dog")
PER_CLASS = 6


def invoke(*args: str, endpoint: str | None = None) -> Result:
    where = ["--endpoint-url", endpoint] if endpoint else []
    return CliRunner().invoke(cli, [*where, "stats", *args], catch_exceptions=False)


def ok(*args: str, code: int | None = 0, endpoint: str | None = None) -> dict:
    result = invoke(*args, "--json", endpoint=endpoint)
    assert code is None or result.exit_code == code, result.output
    return json.loads(result.stdout)


def photo(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    return samples.make_image(samples.image_rng(seed), *size)


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """photos/<class>/<n>.jpg, every picture different."""
    root = tmp_path / "photos"
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for n in range(PER_CLASS):
            (root / name / f"{n}.jpg").write_bytes(jpeg(photo(100 * c + n)))
    return root


@pytest.fixture
def splits(tmp_path: Path, photos: Path) -> list[Path]:
    """The train/val/test outputs of split of a .rec packed from the photos."""
    data = tmp_path / "data"
    data.mkdir()
    run = CliRunner().invoke
    assert run(cli, ["pack", str(photos), str(data / "all.rec")]).exit_code == 0
    args = ["split", str(data / "all.rec"), str(data / "s"), "--train-ratio", "0.5",
            "--test-ratio", "0.25"]  # fmt: skip
    assert run(cli, args).exit_code == 0
    return [data / f"s_{name}.rec" for name in ("train", "val", "test")]


def test_the_split_outputs_have_no_leak_and_their_counts(splits: list[Path]) -> None:
    report = ok(*map(str, splits))
    assert report["leaks"] == 0 and report["problems"] == 0
    assert [s["images"] for s in report["inputs"]] == [9, 5, 4]
    train = report["inputs"][0]
    assert train["format"] == "recordio"
    # Class names come from the class map split wrote beside its outputs.
    assert [(c["class"], c["name"], c["images"]) for c in train["classes"]] == [
        ("0", "bird", 3), ("1", "cat", 3), ("2", "dog", 3)]  # fmt: skip
    assert train["image_formats"] == {"JPEG": 9}
    assert train["width"] == {"min": 160, "q1": 160, "median": 160, "q3": 160, "max": 160}
    assert train["labels_per_image"] == {"1": 9}
    sizes = sorted(len(record) for record in _payloads(splits[0]))
    assert train["bytes"]["min"] == sizes[0] and train["bytes"]["max"] == sizes[-1]
    assert train["bytes"]["median"] == float(np.percentile(sizes, 50))
    assert train["total_bytes"] == sum(sizes)
    pairs = [(Path(p["a"]).name, Path(p["b"]).name) for p in report["pairs"]]
    assert pairs == [("s_train.rec", "s_val.rec"), ("s_train.rec", "s_test.rec"),
                     ("s_val.rec", "s_test.rec")]  # fmt: skip


def _payloads(rec: Path) -> list[bytes]:
    from imgfmt.formats import get

    def fail(err: Exception) -> None:
        raise err

    return [item.image for item in get("recordio").read(str(rec), fail)]


def test_the_human_summary_names_classes_and_says_clean(splits: list[Path]) -> None:
    result = invoke(*map(str, splits))
    assert result.exit_code == 0, result.output
    assert "s_train.rec (recordio): 9 images, 3 classes" in result.stdout
    assert "  0 bird        3   33.3%" in result.stdout
    assert result.stdout.rstrip().endswith("no leakage: no image of one input is in another")


def _lists(tmp_path: Path, photos: Path, val_extra: list[str]) -> tuple[Path, Path]:
    train = tmp_path / "train.lst"
    val = tmp_path / "val.lst"
    train.write_text("".join(f"{n}\t{n % 3}\t{CLASSES[n % 3]}/{n // 3}.jpg\n" for n in range(9)))
    lines = [f"{100 + n}\t{n % 3}\t{CLASSES[n % 3]}/{3 + n // 3}.jpg\n" for n in range(6)]
    val.write_text("".join(lines + val_extra))
    return train, val


def test_an_image_in_two_lists_is_an_exact_leak_with_both_places(
    tmp_path: Path, photos: Path
) -> None:
    train, val = _lists(tmp_path, photos, ["200\t1\tcat/0.jpg\n"])  # train's line 2
    report = ok(str(train), str(val), "--root", str(photos), code=1)
    assert report["leaks"] == 1
    (pair,) = report["pairs"]
    assert (pair["exact"], pair["near"]) == (1, 0)
    (leak,) = pair["examples"]
    assert leak["kind"] == "exact" and leak["distance"] == 0
    assert leak["a"] == {"input": str(train), "id": 1, "where": "entry 2", "path": "cat/0.jpg"}
    assert leak["b"] == {"input": str(val), "id": 200, "where": "entry 7", "path": "cat/0.jpg"}
    text = invoke(str(train), str(val), "--root", str(photos)).stdout
    assert f"{train} / {val}: 1 exact, 0 near" in text
    assert "leakage: 1 image pair shared between inputs" in text


def test_the_same_picture_reencoded_and_resized_is_a_near_leak(
    tmp_path: Path, photos: Path
) -> None:
    picture = Image.open(photos / "dog" / "2.jpg")
    (photos / "dog" / "copy-q60.jpg").write_bytes(jpeg(picture, quality=60))
    small = picture.resize((96, 72), Image.Resampling.LANCZOS)
    small.save(photos / "dog" / "copy-small.png")
    train, val = _lists(tmp_path, photos, ["300\t2\tdog/copy-q60.jpg\n",
                                           "301\t2\tdog/copy-small.png\n"])  # fmt: skip
    report = ok(str(train), str(val), "--root", str(photos), code=1)
    (pair,) = report["pairs"]
    assert (pair["exact"], pair["near"]) == (0, 2)
    assert {leak["b"]["path"] for leak in pair["examples"]} == {"dog/copy-q60.jpg",
                                                                 "dog/copy-small.png"}  # fmt: skip
    assert all(leak["a"]["path"] == "dog/2.jpg" for leak in pair["examples"])
    assert all(leak["distance"] <= 4 for leak in pair["examples"])
    # Bytes alone do not see them; --near 0 asks for equal hashes only.
    assert ok(str(train), str(val), "--root", str(photos), "--exact-only")["leaks"] == 0


def test_unreadable_images_are_counted_named_and_the_rest_described(
    tmp_path: Path, photos: Path
) -> None:
    (photos / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    fuzz = Path(__file__).parent / "fuzz_regressions" / "image-png-bad-iccp"
    shutil.copy(fuzz, photos / "cat" / "fuzzed.png")
    listing = tmp_path / "all.lst"
    listing.write_text("0\t1\tcat/0.jpg\n1\t1\tcat/broken.jpg\n2\t1\tcat/fuzzed.png\n"
                       "3\t1\tcat/missing.jpg\n4\t2\tdog/1.jpg\n")  # fmt: skip
    report = ok(str(listing), "--root", str(photos), code=1)
    (summary,) = report["inputs"]
    assert summary["images"] == 5
    assert summary["unreadable"] >= 2  # broken.jpg and missing.jpg, whatever the fuzzed one does
    named = "\n".join(summary["unreadable_images"])
    assert "cat/broken.jpg" in named and "cat/missing.jpg" in named
    assert summary["width"]["max"] == 160  # the good ones were measured


def test_hostile_images_never_stop_the_scan(tmp_path: Path) -> None:
    """The curated hostile corpus (bombs, rare and unsupported formats, truncations) and
    fuzz mutations of real images, with one good photo among them."""
    root = tmp_path / "hostile"
    root.mkdir()
    hostile.write_curated(root)
    hostile.write_mutated(root, 40)
    (root / "good.jpg").write_bytes(jpeg(photo(1)))
    names = sorted(p.name for p in root.iterdir())
    a, b = tmp_path / "a.lst", tmp_path / "b.lst"
    a.write_text("".join(f"{i}\t0\t{name}\n" for i, name in enumerate(names)))
    b.write_text("0\t0\tgood.jpg\n")
    result = invoke(str(a), str(b), "--root", str(root), "--json", "-j", "2")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    report = json.loads(result.stdout)
    assert report["inputs"][0]["images"] == len(names)
    assert report["inputs"][0]["unreadable"] > 10
    (pair,) = report["pairs"]
    assert pair["exact"] == 1  # the good photo, found whatever came before it


def test_copies_inside_one_input_are_counted_not_called_leakage(
    tmp_path: Path, photos: Path
) -> None:
    listing = tmp_path / "dup.lst"
    listing.write_text("0\t0\tbird/0.jpg\n1\t0\tbird/0.jpg\n2\t0\tbird/1.jpg\n")
    report = ok(str(listing), "--root", str(photos))
    assert report["inputs"][0]["duplicates"] == 1 and report["leaks"] == 0


def test_many_copies_of_one_flat_image_are_counted_without_listing_all(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    root.mkdir()
    flat = io.BytesIO()
    Image.new("RGB", (32, 32), (40, 40, 40)).save(flat, "PNG")
    (root / "flat.png").write_bytes(flat.getvalue())
    a, b = tmp_path / "a.lst", tmp_path / "b.lst"
    a.write_text("".join(f"{i}\t0\tflat.png\n" for i in range(30)))
    b.write_text("".join(f"{i}\t0\tflat.png\n" for i in range(20)))
    report = ok(str(a), str(b), "--root", str(root), "--max-examples", "3", code=1)
    (pair,) = report["pairs"]
    assert pair["exact"] == 30 * 20 and pair["near"] == 0
    assert len(pair["examples"]) == 3


def test_a_manifest_of_s3_images_against_a_local_dataset(
    s3, tmp_path: Path, photos: Path, splits: list[Path]
) -> None:
    """A manifest names S3 objects (SageMaker's rule); they are fetched and compared with a
    local .rec: the photo that is in both is a leak."""
    s3.upload_tree(photos, "photos")
    manifest = tmp_path / "m.manifest"
    manifest.write_text("".join(
        json.dumps({"source-ref": s3.uri(f"photos/{name}"), "label": n,
                    "label-metadata": {"class-name": name.split("/")[0],
                                       "type": "groundtruth/image-classification"}}) + "\n"
        for n, name in enumerate(("bird/0.jpg", "cat/1.jpg"))))  # fmt: skip
    report = ok(str(manifest), *map(str, splits), code=1, endpoint=s3.endpoint)
    assert "error" not in report, report
    m = report["inputs"][0]
    assert m["format"] == "manifest" and m["images"] == 2 and m["unreadable"] == 0
    assert [(c["class"], c["name"]) for c in m["classes"]] == [("0", "bird"), ("1", "cat")]
    # Each photo is in one split of the .rec packed from the same folder, re-encoded by pack
    # (JPEG quality 95): the same pictures, not the same bytes.
    mine = [p for p in report["pairs"] if p["a"] == str(manifest)]
    assert sum(p["near"] for p in mine) == 2 and sum(p["exact"] for p in mine) == 0


def test_usage_errors(tmp_path: Path, splits: list[Path], photos: Path) -> None:
    result = invoke(str(splits[0]), "--root", str(tmp_path))
    assert result.exit_code == 2 and "--root" in result.stderr
    result = invoke(str(tmp_path / "x.txt"))
    assert result.exit_code == 2 and "x.txt" in result.stderr
    result = invoke(str(splits[0]), str(splits[0]))
    assert result.exit_code == 2 and "given twice" in result.stderr
    result = invoke(str(photos))
    assert result.exit_code == 2 and "is a folder of images" in result.stderr
    assert "imgfmt lst-gen" in result.stderr


def test_a_missing_or_unreadable_input_does_not_stop_the_others(
    tmp_path: Path, splits: list[Path]
) -> None:
    fake = tmp_path / "fake.jsonl"
    fake.write_bytes(splits[1].read_bytes())  # a .rec under a JSON Lines name
    report = ok(str(splits[0]), str(tmp_path / "nope.rec"), str(fake), code=1)
    good, missing, bad = report["inputs"]
    assert good["images"] == 9 and good["error"] is None
    assert "nope.rec" in missing["error"] and "no such file" in missing["error"]
    assert bad["error"] is not None or bad["damaged"]
    text = invoke(str(splits[0]), str(tmp_path / "nope.rec")).stdout
    assert "s_train.rec (recordio): 9 images, 3 classes" in text
    assert "error           " in text


def test_an_empty_input_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "empty.lst").write_text("")
    report = ok(str(tmp_path / "empty.lst"), code=1)
    assert report["inputs"][0]["error"] == "no images: the input is empty"


def test_a_truncated_jpeg_is_unreadable_even_in_one_input(tmp_path: Path, photos: Path) -> None:
    data = (photos / "bird" / "0.jpg").read_bytes()
    (photos / "bird" / "cut.jpg").write_bytes(data[: len(data) // 3])
    listing = tmp_path / "one.lst"
    listing.write_text("0\t0\tbird/cut.jpg\n1\t0\tbird/1.jpg\n")
    report = ok(str(listing), "--root", str(photos), code=1)
    (summary,) = report["inputs"]
    assert summary["unreadable"] == 1 and "truncated JPEG" in summary["unreadable_images"][0]
    # Headers alone (--exact-only) cannot tell.
    assert ok(str(listing), "--root", str(photos), "--exact-only")["problems"] == 0


def test_copies_inside_one_input_are_located(tmp_path: Path, photos: Path) -> None:
    listing = tmp_path / "dup.lst"
    listing.write_text("0\t0\tbird/0.jpg\n1\t0\tbird/1.jpg\n2\t1\tbird/0.jpg\n")
    (summary,) = ok(str(listing), "--root", str(photos))["inputs"]
    (dup,) = summary["duplicate_examples"]
    assert (dup["a"]["id"], dup["b"]["id"]) == (0, 2)


def test_multi_label_images_count_in_each_of_their_classes(tmp_path: Path, photos: Path) -> None:
    (tmp_path / "m.classes.tsv").write_text("0\tbird\n1\tcat\n2\tdog\n")
    by_index = tmp_path / "m.lst"  # class labels, as Ground Truth lists them
    by_index.write_text("0\t0\t2\tbird/0.jpg\n1\t1\t0\tcat/0.jpg\n2\t2\t2\tdog/0.jpg\n")
    (summary,) = ok(str(by_index), "--root", str(photos))["inputs"]
    counts = {c["name"]: c["images"] for c in summary["classes"]}
    assert counts == {"bird": 2, "cat": 1, "dog": 2}
    assert summary["labels_per_image"] == {"2": 3}
    hot = tmp_path / "m_hot.lst"  # multi-hot, as SageMaker's multi-label training reads
    hot.write_text("0\t1\t0\t1\tbird/0.jpg\n1\t0\t1\t0\tcat/0.jpg\n")
    (summary,) = ok(str(hot), "--root", str(photos), "--classes", str(tmp_path / "m.classes.tsv"))[
        "inputs"
    ]
    assert {c["name"]: c["images"] for c in summary["classes"]} == {"bird": 1, "cat": 1, "dog": 1}


def test_s3_inputs_give_the_same_report(s3, splits: list[Path]) -> None:
    for path in splits:
        for suffix in (".rec", ".idx"):
            s3.put(f"d/{path.stem}{suffix}", path.with_suffix(suffix).read_bytes())
    local = ok(*map(str, splits))
    remote = ok(*[s3.uri(f"d/{p.name}") for p in splits], endpoint=s3.endpoint)
    for mine, theirs in zip(local["inputs"], remote["inputs"]):
        mine.pop("path"), theirs.pop("path")
        mine.pop("classes"), theirs.pop("classes")  # no class map beside the S3 copies
        assert mine == theirs


def test_list_ids_are_the_index_column_and_a_wrong_root_is_one_error(
    tmp_path: Path, photos: Path
) -> None:
    a, b = tmp_path / "a.lst", tmp_path / "b.lst"
    a.write_text("97\t0\tbird/0.jpg\n12\t0\tbird/1.jpg\n")
    b.write_text("40\t0\tbird/1.jpg\n")
    report = ok(str(a), str(b), "--root", str(photos), code=1)
    (leak,) = report["pairs"][0]["examples"]
    assert (leak["a"]["id"], leak["a"]["where"], leak["b"]["id"]) == (12, "entry 2", 40)
    report = ok(str(a), str(b), code=1)  # the images are not beside the lists
    assert all("pass --root" in s["error"] for s in report["inputs"])
    text = invoke(str(a), "--root", str(tmp_path)).stdout
    assert text.splitlines()[1].startswith("  error           none of the 2 images")


def test_a_converted_dataset_keeps_its_class_names(tmp_path: Path, splits: list[Path]) -> None:
    out = tmp_path / "conv" / "train.jsonl"
    assert CliRunner().invoke(cli, ["convert", str(splits[0]), str(out)]).exit_code == 0
    (summary,) = ok(str(out))["inputs"]
    assert [c["name"] for c in summary["classes"]] == ["bird", "cat", "dog"]
