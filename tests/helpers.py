"""Small builders shared by the command tests."""

from __future__ import annotations

import importlib.util
import io
import random
import sys
from pathlib import Path
from types import ModuleType

from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


#: scripts/make_samples.py: the natural-looking images of the demo and the benchmark.
samples = _load_script("make_samples")
#: scripts/hostile.py: the hostile image corpora and their expected outcomes.
hostile = _load_script("hostile")


def image_bytes(
    width: int, height: int, seed: int = 0, fmt: str = "JPEG", mode: str = "RGB"
) -> bytes:
    """A small image with some structure (a gradient plus blocks), so encoders do real work."""
    rng = random.Random(seed)
    img = Image.linear_gradient("L").resize((width, height)).convert(mode if mode != "P" else "RGB")
    for _ in range(4):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = (x0, y0, min(width, x0 + width // 3 + 1), min(height, y0 + height // 3 + 1))
        colour = tuple(rng.randrange(256) for _ in range(len(img.getbands())))
        img.paste(colour if len(colour) > 1 else colour[0], box)
    if mode == "P":
        img = img.convert("P")
    out = io.BytesIO()
    img.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def _jpeg_head() -> bytes:
    """A real JPEG's bytes up to its first scan: what pass-through reads of a file."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "JPEG")
    data = out.getvalue()
    return data[: data.index(b"\xff\xda")]


#: The start of a baseline JPEG, up to its pixel data: followed by random bytes, a stand-in
#: for a big image that pass-through packs without decoding (it reads only the headers).
JPEG_MAGIC = _jpeg_head()


def make_tree(root: Path, classes: dict[str, int], size: tuple[int, int] = (64, 48)) -> Path:
    """``root/<class>/img<i>.jpg`` for each class; returns root."""
    for c, (name, count) in enumerate(sorted(classes.items())):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (folder / f"img{i}.jpg").write_bytes(image_bytes(*size, seed=c * 1000 + i))
    return root


def leftovers(folder: Path) -> list[str]:
    """Temporary files imgfmt left in ``folder`` (there must never be any)."""
    return sorted(p.name for p in folder.rglob(".imgfmt-tmp-*"))


def run_s3(s3, *args: str, code: int = 0):  # type: ignore[no-untyped-def]
    """``imgfmt --endpoint-url <the test S3> ARGS`` in process; it must exit ``code``."""
    from click.testing import CliRunner

    from imgfmt.cli import cli

    result = CliRunner().invoke(cli, ["--endpoint-url", s3.endpoint, *args])
    assert result.exit_code == code, (result.output, result.stderr, result.exception)
    return result


def only_error_line(result) -> str:  # type: ignore[no-untyped-def]
    """The run's only stderr line; there must be no traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]
