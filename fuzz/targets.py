"""Fuzz targets for every parser of untrusted input.

Each target feeds arbitrary bytes to one parser. The contract under test: a parser either
succeeds or raises ``imgfmt.errors.ImgfmtError`` (a one-line error with a location);
anything else (IndexError, struct.error, UnicodeDecodeError, MemoryError, a hang) is a bug.

Run one with atheris (coverage-guided): ``python fuzz/run.py recordio -max_total_time=60``,
or all of them with ``make fuzz``. ``tests/test_fuzz_regressions.py`` replays every input in
``tests/fuzz_regressions/`` (inputs that once crashed a parser) through the same targets.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable

from imgfmt import images, payloads
from imgfmt.errors import ImgfmtError
from imgfmt.formats import jsonlines, lst, manifest, recordio, rio_protobuf
from imgfmt.ops import predictions, verify

#: Cap on what a damaged length may make a reader allocate in a fuzz run.
MAX_INPUT = 1 << 16


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8", errors="surrogateescape").splitlines(keepends=True)


def fuzz_recordio(data: bytes) -> None:
    """Sequential framing, then the image header of every record read."""
    stream = io.BytesIO(data)
    offset, number = 0, 0
    while True:
        result = recordio.read_record(stream, offset, number, "<fuzz>")
        if result is None:
            return
        payload, offset = result
        recordio.unpack_image_record(payload, path="<fuzz>")
        number += 1


def fuzz_idx(data: bytes) -> None:
    recordio.parse_idx(_lines(data), "<fuzz>")


def fuzz_lst(data: bytes) -> None:
    for _entry in lst.parse_lst(_lines(data), "<fuzz>"):
        pass


def fuzz_manifest(data: bytes) -> None:
    for _problem in manifest.iter_manifest_problems(_lines(data), "<fuzz>"):
        pass


def fuzz_verify(data: bytes) -> None:
    """The tolerant scanner: must never raise, whatever the bytes (it reports instead)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "f.rec")
        with open(path, "wb") as handle:
            handle.write(data)
        verify.verify([path], workers=1)


def fuzz_jsonl(data: bytes) -> None:
    for _entry in jsonlines.parse_jsonl(_lines(data), "<fuzz>"):
        pass


def fuzz_protobuf(data: bytes) -> None:
    """One RecordIO-protobuf payload: the generated parser, then our tensor checks."""
    rio_protobuf.decode_dense(data)
    rio_protobuf.payload_problems(data)


def fuzz_predictions(data: bytes) -> None:
    for number, raw in enumerate(_lines(data), start=1):
        predictions.parse_prediction(raw, "<fuzz>", number)


def fuzz_image(data: bytes) -> None:
    """An image file, as pack and verify --decode see it: the pass-through rule, then a full
    decode, crop and resize (the guards of imgfmt.decoding), then the decode check alone."""
    payloads.payload_problem(data)
    images.process_image(data, images.ImageOptions(resize=24, center_crop=True), "<fuzz>", [])
    images.check_decodes(data, "<fuzz>", notes=[])


TARGETS: dict[str, Callable[[bytes], None]] = {
    "recordio": fuzz_recordio,
    "idx": fuzz_idx,
    "lst": fuzz_lst,
    "manifest": fuzz_manifest,
    "verify": fuzz_verify,
    "jsonl": fuzz_jsonl,
    "protobuf": fuzz_protobuf,
    "predictions": fuzz_predictions,
    "image": fuzz_image,
}

#: Targets whose contract is "never raise at all", not "raise only ImgfmtError".
NEVER_RAISES = {"verify"}


def run_target(name: str, data: bytes) -> None:
    """Run one target on one input, enforcing its contract (raises AssertionError on a bug)."""
    try:
        TARGETS[name](data[:MAX_INPUT])
    except ImgfmtError:
        if name in NEVER_RAISES:
            raise
