"""The format layer: every dataset format behind one interface, found through one registry,
and the operations working on each of them the same way (WebDataset included, from the
command line)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import image_bytes, make_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgfmt import formats
from imgfmt.cli import cli
from imgfmt.errors import FormatError, UsageError
from imgfmt.formats.base import Item
from imgfmt.images import ImageOptions
from imgfmt.ops import pack
from imgfmt.storage import AtomicOutputs

JPEG = image_bytes(16, 12)
PNG = image_bytes(12, 16, fmt="PNG")

#: Dataset formats that store image files (RecordIO-protobuf stores pixels: tested apart).
FILE_FORMATS = {"recordio": ".rec", "jsonlines": ".jsonl", "webdataset": ".tar"}


def run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == expect, result.output
    return result.stdout


def write(name: str, path: Path, items: list[Item]) -> list[str]:
    fmt = formats.get(name)
    with AtomicOutputs() as outputs:
        writer = fmt.writer(str(path), outputs)
        for item in items:
            writer.append(fmt.encode(item), item)
        writer.finish()
    return writer.outputs


def read(name: str, path: Path) -> list[Item]:
    def damaged(err: FormatError) -> None:
        raise err

    return list(formats.get(name).read(str(path), damaged))


labels = st.one_of(
    st.tuples(st.integers(0, 9).map(float)),
    st.lists(st.integers(0, 1).map(float), min_size=2, max_size=4).map(tuple),
)
items = st.lists(
    st.tuples(labels, st.sampled_from([JPEG, PNG]), st.sampled_from(["a/x.jpg", "b/c/y.png"])),
    min_size=1,
    max_size=6,
)


@pytest.mark.parametrize("name", sorted(FILE_FORMATS))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(drawn=items)
def test_every_format_reads_back_what_it_wrote(
    name: str,
    drawn: list[tuple[tuple[float, ...], bytes, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The interface's contract, for each format that stores image files: ids, labels
    (multi-label included), paths where the format keeps them, and image bytes come back."""
    folder = tmp_path_factory.mktemp(name)
    written = [Item(i * 3, lab, image, path) for i, (lab, image, path) in enumerate(drawn)]
    write(name, folder / f"d{FILE_FORMATS[name]}", written)
    back = read(name, folder / f"d{FILE_FORMATS[name]}")
    assert [(i.index, i.labels, i.image) for i in back] == [
        (i.index, i.labels, i.image) for i in written
    ]
    if name != "recordio":  # RecordIO keeps no path
        assert [i.path for i in back] == [i.path for i in written]


def test_the_registry_finds_formats_by_name_extension_and_content(tmp_path: Path) -> None:
    assert formats.get("webdataset", shard_records=5).name == "webdataset"
    assert formats.for_output(str(tmp_path / "x.jsonl")).name == "jsonlines"
    assert formats.for_output(str(tmp_path / "x.tar")).name == "webdataset"
    digits = tmp_path / "d.rec"
    pack.pack(str(make_tree(tmp_path / "p", {"a": 2})), str(digits), fmt="recordio-protobuf",
              size=(4, 4))  # fmt: skip
    assert formats.for_input(str(digits)).name == "recordio-protobuf"  # by content
    assert formats.for_check(str(tmp_path / "p.lst")).name == "lst"
    with pytest.raises(UsageError, match="`size` is an option of format recordio-protobuf"):
        formats.get("jsonlines", size=(2, 2))
    with pytest.raises(UsageError, match="unknown format 'tiff'"):
        formats.get("tiff")


def test_the_library_validates_its_own_options(tmp_path: Path) -> None:
    """Option rules live in the library, naming parameters; the CLI only shows them as flags."""
    with pytest.raises(UsageError, match="`resize` does not apply with `pass_through`"):
        ImageOptions(pass_through=True, resize=16)
    photos = str(make_tree(tmp_path / "p", {"a": 1}))
    with pytest.raises(UsageError, match="recordio-protobuf needs `size`"):
        pack.pack(photos, str(tmp_path / "x.rec"), fmt="recordio-protobuf")
    with pytest.raises(UsageError, match="`center_crop` does not apply to recordio-protobuf"):
        pack.pack(photos, str(tmp_path / "x.rec"), fmt="recordio-protobuf", size=(4, 4),
                  options=ImageOptions(center_crop=True))  # fmt: skip
    result = CliRunner().invoke(cli, ["pack", photos, str(tmp_path / "x.rec"), "--pass-through",
                                      "--resize", "9"])  # fmt: skip
    assert result.exit_code == 2
    assert "--resize does not apply with --pass-through" in result.stderr


def test_a_manifest_with_another_attribute_splits_by_its_classification_label(
    tmp_path: Path,
) -> None:
    """A Ground Truth line may carry a second attribute with metadata (bounding boxes beside
    the class): split chooses the label as verify and manifest-to-lst do."""
    manifest = tmp_path / "gt.manifest"
    lines = []
    for i in range(8):
        lines.append(json.dumps({
            "source-ref": f"s3://b/img{i}.jpg",
            "class": i % 2,
            "class-metadata": {"class-name": ["cat", "dog"][i % 2], "confidence": 1.0,
                               "type": "groundtruth/image-classification",
                               "job-name": "labeling-job/class", "human-annotated": "yes",
                               "creation-date": "2026-01-01T00:00:00.000000"},
            "boxes": {"annotations": [], "image_size": [{"width": 8, "height": 8}]},
            "boxes-metadata": {"type": "groundtruth/object-detection",
                               "job-name": "labeling-job/boxes"},
        }))  # fmt: skip
    manifest.write_text("\n".join(lines) + "\n")
    run("verify", str(manifest))
    summary = json.loads(run("split", str(manifest), str(tmp_path / "s"), "--train-ratio", "0.5",
                             "--json"))  # fmt: skip
    assert summary["label_attribute"] == "class"
    assert summary["classes"] == {"0": 4, "1": 4}


def test_a_recordio_protobuf_split_writes_each_split_s_list(tmp_path: Path) -> None:
    """The list beside a RecordIO-protobuf output is its only map from record to image
    (``predictions`` reads it): each split gets the lines of its records."""
    photos = make_tree(tmp_path / "p", {"a": 4, "b": 4})
    digits = tmp_path / "d.rec"
    run("pack", str(photos), str(digits), "--format", "recordio-protobuf", "--size", "4x4")
    summary = json.loads(run("split", str(digits), str(tmp_path / "s"), "--train-ratio", "0.5",
                             "--json"))  # fmt: skip
    listed = (tmp_path / "d.lst").read_text().splitlines()
    parts = []
    for split in ("train", "val"):
        out = summary["outputs"][str(tmp_path / f"s_{split}.rec")]
        lines = (tmp_path / f"s_{split}.lst").read_text().splitlines()
        assert out["list"] == str(tmp_path / f"s_{split}.lst") and len(lines) == out["count"]
        parts += lines
    assert sorted(parts) == sorted(listed)


def test_webdataset_from_the_command_line(tmp_path: Path) -> None:
    """pack, unpack, verify, split and convert all work on WebDataset shards."""
    photos = make_tree(tmp_path / "photos", {"cat": 5, "dog": 4})
    shards = tmp_path / "shards"
    shards.mkdir()
    run("pack", str(photos), str(shards / "train.tar"), "--resize", "8")
    assert sorted(p.name for p in shards.iterdir()) == [
        "train-000000.tar", "train.classes.tsv", "train.lst"]  # fmt: skip
    assert run("verify", str(shards / "train.tar"), "--decode").endswith(
        "checked 1 file: 9 items, 9 images decoded: no problems\n"
    )
    run("unpack", str(shards / "train.tar"), str(tmp_path / "out"))
    assert sorted(p.parent.name for p in (tmp_path / "out").rglob("*.jpg")) == ["cat"] * 5 + [
        "dog"] * 4  # fmt: skip
    run("split", str(shards / "train.tar"), str(tmp_path / "s.tar"), "--train-ratio", "0.5")
    halves = [read("webdataset", tmp_path / f"s_{split}.tar") for split in ("train", "val")]
    assert sorted(len(h) for h in halves) == [4, 5]
    rec = tmp_path / "back.rec"
    run("convert", str(shards / "train.tar"), str(rec))
    run("convert", str(rec), str(tmp_path / "again.tar"), "--shard-records", "4")
    again = read("webdataset", tmp_path / "again.tar")
    assert [i.image for i in again] == [i.image for i in read("webdataset", shards / "train.tar")]
    assert len(list(tmp_path.glob("again-*.tar"))) == 3
    for item in again:
        assert Image.open(io.BytesIO(item.image)).size == (10, 8)


def test_unlabeled_records_stay_unlabeled_through_unpack_and_repack(tmp_path: Path) -> None:
    """A RecordIO-protobuf file as the SageMaker SDK writes it for inference (no labels):
    unpack lists its records without a label (index<TAB>path), pack makes the same file
    again, and converting it keeps them unlabeled where the target can say so."""
    import numpy as np

    from imgfmt.formats import rio_protobuf

    source = tmp_path / "unlabeled.rec"
    with rio_protobuf.RioProtobufFileWriter(str(source)) as out:
        for i in range(3):
            out.write(np.full((4, 6), 40 * i, dtype=np.float32), None, shape=(4, 6))
    run("unpack", str(source), str(tmp_path / "out"))
    listed = (tmp_path / "out" / "unlabeled.lst").read_text().splitlines()
    assert listed == [f"{i}\t_unlabeled/{i}.png" for i in range(3)]
    again = tmp_path / "again.rec"
    run("pack", str(tmp_path / "out" / "unlabeled.lst"), str(again), "--format",
        "recordio-protobuf", "--size", "6x4", "--color", "0")  # fmt: skip
    assert again.read_bytes() == source.read_bytes()
    assert [r.labels for r in rio_protobuf.iter_records(str(again))] == [(), (), ()]
    # A format that needs a label says what it stored instead.
    result = CliRunner().invoke(cli, ["pack", str(tmp_path / "out" / "unlabeled.lst"),
                                      str(tmp_path / "x.rec"), "--resize", "4"])  # fmt: skip
    assert result.exit_code == 0
    assert "3 entries have no label; recordio stores label 0 for them" in result.stderr
    run("convert", str(source), str(tmp_path / "u.tar"))
    assert [i.labels for i in read("webdataset", tmp_path / "u.tar")] == [(), (), ()]


def test_review_findings_on_webdataset_and_convert(tmp_path: Path) -> None:
    """What a review found, each now as a user would see it."""
    photos = make_tree(tmp_path / "photos", {"a": 3, "b": 2})
    out = tmp_path / "o"
    out.mkdir()
    # pack --shard-size into a WebDataset: its own shard names, readable by the dataset name.
    run("pack", str(photos), str(out / "p.tar"), "--shard-size", "4kB", "--pass-through")
    assert sorted(p.name for p in out.glob("*.tar"))[0] == "p-000000.tar"
    assert run("verify", str(out / "p.tar")).endswith("5 items: no problems\n")
    # Writing a dataset whose shards are there already would mix old and new: refused.
    result = CliRunner().invoke(cli, ["convert", str(out / "p.tar"), str(out / "p.tar")])
    assert result.exit_code == 2 and "shards of a dataset of that name are there" in result.stderr
    # Pass-through into WebDataset stores images of any format, and no non-images.
    (photos / "a" / "page.jpg").write_text("<html>404</html>")
    summary = json.loads(run("pack", str(photos), str(out / "q.tar"), "--pass-through",
                             "--json", "--allow-skip"))  # fmt: skip
    assert [s["kind"] for s in summary["skipped_items"]] == ["not-image"]
    (photos / "a" / "page.jpg").unlink()
    # verify of a missing dataset is a problem in the report; the other inputs are checked.
    report = json.loads(run("verify", str(out / "gone.tar"), str(out / "p.tar"), "--json",
                            expect=1))  # fmt: skip
    assert report["problems_by_check"] == {"input": 1} and report["checked"]["items"] == 5


def test_review_findings_on_unpack_convert_and_json(tmp_path: Path) -> None:
    from imgfmt.formats.recordio import IDX_SUFFIX, RecordWriter, pack_image_record

    rec = tmp_path / "dup.rec"
    with open(rec, "wb") as data, open(str(rec)[:-4] + IDX_SUFFIX, "w") as index:
        writer = RecordWriter(data, index, name=str(rec))
        writer.write(pack_image_record(0.0, 5, JPEG), 0)
        writer.write(pack_image_record(0.0, 5, image_bytes(16, 12, seed=1)), 1)
    # Two records with one header id (another tool's .rec): both are written.
    run("unpack", str(rec), str(tmp_path / "u"))
    assert sorted(p.name for p in (tmp_path / "u" / "0").iterdir()) == ["5.1.jpg", "5.jpg"]
    # A re-encoded image's path takes the new encoding's extension.
    gif = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(gif, "GIF")
    src = tmp_path / "g.jsonl"
    src.write_text(json.dumps({"id": 0, "path": "a/anim.gif", "label": 0,
                               "image": __import__("base64").b64encode(gif.getvalue()).decode()})
                   + "\n")  # fmt: skip
    run("convert", str(src), str(tmp_path / "g.rec"))
    run("convert", str(tmp_path / "g.rec"), str(tmp_path / "g2.jsonl"))
    run("convert", str(src), str(tmp_path / "g3.jsonl"), "--resize", "4")
    assert json.loads((tmp_path / "g3.jsonl").read_text())["path"] == "a/anim.jpg"
    # --max-pixels alone applies to a format that decodes.
    result = CliRunner().invoke(cli, ["convert", str(rec), str(tmp_path / "p.rec"), "--format",
                                      "recordio-protobuf", "--size", "4x4", "--max-pixels", "10",
                                      "--json"])  # fmt: skip
    assert result.exit_code == 1 and json.loads(result.stdout)["skipped"] == 2
    # Only the options given are named.
    result = CliRunner().invoke(
        cli,
        [
            "convert",
            str(rec),
            str(tmp_path / "p.rec"),
            "--format",
            "recordio-protobuf",
            "--size",
            "4x4",
            "--encoding",
            "png",
        ],
    )
    assert "--encoding does not apply to recordio-protobuf" in result.stderr
    # --json gives one object whatever the order of the options.
    for args in (["--json", "--shard-size", "abc"], ["--shard-size", "abc", "--json"]):
        result = CliRunner().invoke(cli, ["pack", str(tmp_path / "u"), str(tmp_path / "z.rec"),
                                          *args])  # fmt: skip
        assert result.exit_code == 2 and json.loads(result.stdout)["exit_code"] == 2
