"""preview: a contact sheet, a seeded sample per class, read through the index."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import leftovers, samples
from PIL import Image

from imgfmt.cli import cli

CLASSES = ("bird", "cat", "dog", "fish")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["preview", *args], catch_exceptions=False)


def ok(*args: str, code: int = 0) -> dict:
    result = invoke(*args, "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def jpeg(seed: int, size: tuple[int, int] = (120, 90)) -> bytes:
    out = io.BytesIO()
    samples.make_image(samples.image_rng(seed), *size).save(out, "JPEG", quality=85)
    return out.getvalue()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for n in range(10 + 5 * c):
            (root / name / f"{n:02d}.jpg").write_bytes(jpeg(100 * c + n))
    return root


@pytest.fixture
def rec(tmp_path: Path, photos: Path) -> Path:
    out = tmp_path / "data" / "all.rec"
    out.parent.mkdir()
    result = CliRunner().invoke(cli, ["pack", str(photos), str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_a_sheet_shows_n_images_of_every_class_with_names(tmp_path: Path, rec: Path) -> None:
    sheet = tmp_path / "sheet.png"
    report = ok(str(rec), "-o", str(sheet), "--per-class", "3")
    assert [(c["class"], c["name"], len(c["ids"])) for c in report["classes"]] == [
        ("0", "bird", 3), ("1", "cat", 3), ("2", "dog", 3), ("3", "fish", 3)]  # fmt: skip
    assert report["images"] == 70 and report["shown"] == 12
    image = Image.open(sheet)
    assert image.format == "PNG" and image.width > 3 * 128 and image.height > 4 * 128
    # Through the index, reading stops once every class has its 3 images.
    assert report["read"] < 70


def test_the_same_seed_gives_the_same_sheet_another_seed_another(tmp_path: Path, rec: Path) -> None:
    first = ok(str(rec), "-o", str(tmp_path / "a.png"), "--seed", "5")
    again = ok(str(rec), "-o", str(tmp_path / "b.png"), "--seed", "5", "-j", "1")
    other = ok(str(rec), "-o", str(tmp_path / "c.png"), "--seed", "6")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert first["classes"] == again["classes"] != other["classes"]


def test_the_shown_ids_hold_the_images_of_their_class(tmp_path: Path, rec: Path) -> None:
    from imgfmt.formats import get

    report = ok(str(rec), "-o", str(tmp_path / "s.png"), "--per-class", "4")
    labels = {item.index: item.labels for item in get("recordio").read(str(rec), print)}
    for shown in report["classes"]:
        assert all(labels[i] == (float(shown["class"]),) for i in shown["ids"])


def test_classes_by_name_or_label_and_jpeg_output(tmp_path: Path, rec: Path) -> None:
    sheet = tmp_path / "two.jpg"
    report = ok(str(rec), "-o", str(sheet), "--classes", "cat,3", "--per-class", "2")
    assert [c["name"] for c in report["classes"]] == ["cat", "fish"]
    assert Image.open(sheet).format == "JPEG"
    result = invoke(str(rec), "-o", str(sheet), "--classes", "zebra")
    assert result.exit_code == 2 and "no class 'zebra'" in result.stderr


def test_a_list_is_sampled_whole_with_per_class_counts(tmp_path: Path, photos: Path) -> None:
    listing = tmp_path / "p.lst"
    lines = [f"{i}\t{c}\t{name}/{n:02d}.jpg\n" for i, (c, name, n) in enumerate(
        (c, name, n) for c, name in enumerate(CLASSES) for n in range(10 + 5 * c))]  # fmt: skip
    listing.write_text("".join(lines))
    report = ok(str(listing), "--root", str(photos), "-o", str(tmp_path / "l.png"))
    assert [c["images"] for c in report["classes"]] == [10, 15, 20, 25]
    assert [len(c["ids"]) for c in report["classes"]] == [8, 8, 8, 8]


def test_an_undecodable_image_is_a_placeholder_named_and_exit_3(
    tmp_path: Path, photos: Path
) -> None:
    (photos / "cat" / "00.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    listing = tmp_path / "p.lst"
    listing.write_text("0\t1\tcat/00.jpg\n1\t1\tcat/01.jpg\n2\t0\tbird/00.jpg\n")
    sheet = tmp_path / "s.png"
    result = invoke(str(listing), "--root", str(photos), "-o", str(sheet))
    assert result.exit_code == 3
    assert "cat/00.jpg" in result.stderr and "wrote" in result.stdout
    assert "cat/00.jpg" not in result.stdout
    assert (
        invoke(str(listing), "--root", str(photos), "-o", str(sheet), "--allow-skip").exit_code == 0
    )
    assert Image.open(sheet).size[0] > 0


def test_bad_outputs_are_usage_errors_and_new_folders_are_made(tmp_path: Path, rec: Path) -> None:
    result = invoke(str(rec), "-o", str(tmp_path / "sheet.gif"))
    assert result.exit_code == 2 and ".png or .jpg" in result.stderr
    result = invoke(str(rec), "-o", str(tmp_path / "new" / "folder" / "sheet.png"))
    assert result.exit_code == 0  # a missing output folder is created
    assert (tmp_path / "new" / "folder" / "sheet.png").is_file()
    assert leftovers(tmp_path) == []


def test_on_s3_only_the_records_shown_are_fetched(s3, tmp_path: Path, rec: Path) -> None:
    for suffix in (".rec", ".idx"):
        s3.put(f"d/all{suffix}", rec.with_suffix(suffix).read_bytes())
    s3.put("d/all.classes.tsv", (rec.parent / "all.classes.tsv").read_bytes())
    s3.proxy.reset()
    args = ["--endpoint-url", s3.endpoint, "preview", s3.uri("d/all.rec"), "-o",
            s3.uri("out/sheet.png"), "--per-class", "2", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    record_gets = [r for r in s3.proxy.seen("GET", "d/all.rec")]
    assert report["read"] < 70 and len(record_gets) <= report["read"] + 2
    assert Image.open(io.BytesIO(s3.get("out/sheet.png"))).format == "PNG"


def test_many_classes_are_capped_to_a_sheet_a_viewer_opens(tmp_path: Path, photos: Path) -> None:
    listing = tmp_path / "many.lst"
    listing.write_text("".join(f"{i}\t{i}\tbird/{i % 10:02d}.jpg\n" for i in range(300)))
    sheet = tmp_path / "many.jpg"
    report = ok(str(listing), "--root", str(photos), "-o", str(sheet), "--per-class", "1")
    assert report["classes_found"] == 300 and len(report["classes"]) == 50
    assert [c["class"] for c in report["classes"]] == [str(i) for i in range(50)]
    assert Image.open(sheet).height < 65_500
    more = ok(str(listing), "--root", str(photos), "-o", str(sheet), "--max-classes", "60")
    assert len(more["classes"]) == 60


def test_a_multi_label_image_shows_in_each_of_its_classes(tmp_path: Path, photos: Path) -> None:
    listing = tmp_path / "m.lst"
    listing.write_text("0\t0\t2\tbird/00.jpg\n1\t1\t1\tcat/00.jpg\n")
    report = ok(str(listing), "--root", str(photos), "-o", str(tmp_path / "m.png"))
    assert [(c["class"], c["ids"]) for c in report["classes"]] == [("0", [0]), ("1", [1]),
                                                                   ("2", [0])]  # fmt: skip


def test_a_list_caption_has_its_index_and_a_wrong_root_is_one_error(
    tmp_path: Path, photos: Path
) -> None:
    listing = tmp_path / "p.lst"
    listing.write_text("731\t1\tcat/00.jpg\n")
    report = ok(str(listing), "--root", str(photos), "-o", str(tmp_path / "p.png"))
    assert report["classes"][0]["ids"] == [731]
    result = invoke(str(listing), "-o", str(tmp_path / "q.png"))
    assert result.exit_code == 1 and not (tmp_path / "q.png").exists()
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "pass --root" in line
