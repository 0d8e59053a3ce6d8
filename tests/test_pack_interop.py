"""pack against mxnet 1.9.1's im2rec.py itself, on the same list and images."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import image_bytes, make_tree
from PIL import Image

from imgfmt.cli import cli
from imgfmt.formats.recordio import RecordReader, unpack_image_record

pytestmark = pytest.mark.interop


def im2rec(mxnet_python: str, im2rec_py: str, prefix: Path, root: Path, *flags: str) -> None:
    subprocess.run(
        [mxnet_python, im2rec_py, str(prefix), str(root), "--num-thread", "1", *flags],
        check=True,
        capture_output=True,
    )


def imgfmt(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_pass_through_pack_is_byte_identical_to_im2rec(
    tmp_path: Path, mxnet_python: str, im2rec_py: str
) -> None:
    photos = make_tree(tmp_path / "photos", {"a b": 4, "été": 3, "z": 5})
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    theirs.mkdir(), ours.mkdir()
    imgfmt("lst-gen", str(photos), str(theirs / "set"), "--recursive")
    im2rec(mxnet_python, im2rec_py, theirs / "set", photos, "--pass-through")
    imgfmt(
        "pack",
        str(theirs / "set.lst"),
        str(ours / "set.rec"),
        "--root",
        str(photos),
        "--pass-through",
    )
    assert (ours / "set.rec").read_bytes() == (theirs / "set.rec").read_bytes()
    assert (ours / "set.idx").read_bytes() == (theirs / "set.idx").read_bytes()


def test_multi_label_pack_label_is_byte_identical_to_im2rec(
    tmp_path: Path, mxnet_python: str, im2rec_py: str
) -> None:
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes(image_bytes(12, 10, seed=i, fmt="PNG"))
    lines = [f"{i * 3}\t{i % 2:f}\t{(i + 1) % 2:f}\t{i * 0.5:f}\t{i}.png\n" for i in range(4)]
    (tmp_path / "m.lst").write_text("".join(lines))
    im2rec(mxnet_python, im2rec_py, tmp_path / "m", tmp_path, "--pass-through", "--pack-label")
    imgfmt(
        "pack",
        str(tmp_path / "m.lst"),
        str(tmp_path / "ours.rec"),
        "--pass-through",
        "--pack-label",
    )
    assert (tmp_path / "ours.rec").read_bytes() == (tmp_path / "m.rec").read_bytes()
    assert (tmp_path / "ours.idx").read_bytes() == (tmp_path / "m.idx").read_bytes()


def _decoded(path: Path) -> list[tuple[int, float, np.ndarray]]:
    out = []
    for record in RecordReader(str(path)):
        header, image = unpack_image_record(record.payload)
        pixels = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"), dtype=np.float64)
        out.append((header.id, header.label, pixels))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


#: Measured on these small block images at a 3-4x shrink: 29.5-37 dB (29.5 with the centre
#: crop). The gap is cv2.resize INTER_LINEAR's aliasing (im2rec does not anti-alias), not our
#: decode: on natural photos tests/test_images_interop.py measures 34-55 dB.
MIN_PSNR_DB = 28.0


@pytest.mark.parametrize("flags", [["--resize", "48"], ["--resize", "40", "--center-crop"]])
def test_resized_pack_matches_im2rec_geometry_and_pixels(
    tmp_path: Path, mxnet_python: str, im2rec_py: str, flags: list[str]
) -> None:
    photos = make_tree(tmp_path / "photos", {"p": 3, "q": 3}, size=(160, 120))
    for i, size in enumerate([(90, 200), (150, 150)]):  # portrait and square too
        (photos / "p" / f"odd{i}.jpg").write_bytes(image_bytes(*size, seed=50 + i))
    imgfmt("lst-gen", str(photos), str(tmp_path / "set"), "--recursive")
    im2rec(mxnet_python, im2rec_py, tmp_path / "set", photos, "--quality", "95", *flags)
    imgfmt(
        "pack",
        str(tmp_path / "set.lst"),
        str(tmp_path / "ours.rec"),
        "--root",
        str(photos),
        "--quality",
        "95",
        *flags,
    )
    theirs, ours = _decoded(tmp_path / "set.rec"), _decoded(tmp_path / "ours.rec")
    assert [(i, label, px.shape) for i, label, px in ours] == [
        (i, label, px.shape) for i, label, px in theirs
    ]
    for (_i, _l, a), (_j, _m, b) in zip(ours, theirs):
        assert psnr(a, b) >= MIN_PSNR_DB
