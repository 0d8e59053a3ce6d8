"""Which encoded images a dataset may carry as they are: what its readers decode.

A ``.rec`` is read by MXNet (``ImageRecordIter`` and ``mx.image``, which decode with
OpenCV's ``imdecode``), by NVIDIA DALI (nvJPEG on a GPU, libjpeg-turbo and libpng on the CPU)
and by SageMaker's built-in image classification (MXNet inside; its documented content types
are JPEG and PNG). A JSON Lines image dataset goes to SageMaker batch transform, whose image
models take ``image/jpeg`` and ``image/png``. What all of them read:

- **JPEG**, 8-bit, Huffman-coded baseline, extended or progressive, with 1 (gray) or 3
  (YCbCr) components. Arithmetic-coded, lossless and hierarchical JPEGs are refused: libjpeg
  builds differ on them (OpenCV's bundled one and nvJPEG read none). 12-bit JPEGs need a
  12-bit libjpeg. CMYK/YCCK JPEGs decode with inverted or shifted colours in some readers.
- **PNG**, any bit depth and colour type (libpng reads them all; 16-bit is kept by
  ``IMREAD_UNCHANGED`` and reduced to 8 bits otherwise).

Other formats are left out on purpose: BMP, TIFF, WebP, JPEG 2000 and PNM are read by
OpenCV and DALI but are not formats SageMaker documents, and WebP and JPEG 2000 are optional
in OpenCV builds; GIF, PSD, AVIF, HEIF, ICO, TGA, QOI and the rest are read by none of
them. Such files are re-encoded (pack without ``--pass-through``), never stored blind.

:func:`payload_problem` applies the rule; ``pack --pass-through`` skips what it refuses and
``verify --decode`` reports it, so the two always agree.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass

from imgfmt import decoding
from imgfmt.errors import ImageError


@dataclass(frozen=True)
class Readers:
    """The programs that decode a dataset's images, and the formats they all read."""

    names: str
    formats: frozenset[str]


#: Readers of MXNet RecordIO files and of JSON Lines image datasets.
MXNET_READERS = Readers("MXNet, NVIDIA DALI and SageMaker", frozenset({"JPEG", "PNG"}))

# The JPEG coding processes every reader decodes (see the module's docstring).
_READABLE_JPEG = {0xC0, 0xC1, 0xC2}
_READABLE_JPEG_COMPONENTS = {1: "grayscale", 3: "colour"}


def identify(data: bytes) -> str | None:
    """The format of an encoded image, as Pillow names it (``JPEG``, ``PNG``, ``GIF``,
    ``ICO``...) from its header alone, or None when it is no image Pillow knows.

    Safe on threads (pass-through identifies on I/O threads): JPEG and PNG are told by their
    signatures; anything else is opened by Pillow (the header only) under a lock, with its
    warnings and log silenced, since a plugin parsing a damaged header may warn.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(decoding.PNG_SIGNATURE):
        return "PNG"
    return _open_quietly(data)


_QUIET = threading.Lock()


def _open_quietly(data: bytes) -> str | None:
    from PIL import Image

    from imgfmt import images

    decoding.quiet_pillow_log()
    with _QUIET, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with images._pillow_bomb_check_off(), Image.open(io.BytesIO(data)) as image:
                return image.format
        except Exception:  # noqa: BLE001 - any failure to read a header means "not known"
            extension = images.sniff_extension(data)
            return extension.lstrip(".").upper() if extension else None


def _jpeg_problem(data: bytes) -> str | None:
    frame = decoding.jpeg_frame(data)
    if frame is None:
        return None  # no frame header found: a damaged JPEG, which decoding will report
    marker, precision, components = frame
    if marker not in _READABLE_JPEG:
        process = decoding.JPEG_SOF_MARKERS[marker]
        return f"{'an' if process[0] in 'aeiou' else 'a'} {process} JPEG"
    if precision != 8:
        return f"a {precision}-bit JPEG"
    if components not in _READABLE_JPEG_COMPONENTS:
        return {4: "a CMYK (4-component) JPEG"}.get(components, f"a {components}-component JPEG")
    return None


def payload_problem(
    data: bytes, readers: Readers = MXNET_READERS, *, pass_through: bool = True
) -> ImageError | None:
    """Why ``data`` must not be stored as it is for ``readers`` (an ``ImageError`` with kind
    ``unsupported`` or ``not-image``, without a path), or None when they all decode its
    format. Only the header is read: whether the rest decodes is for decoding to say.
    ``pass_through``: the message is for a file about to be packed unchanged (else, for a
    payload already in a dataset)."""
    fmt = identify(data)
    if fmt is None:
        from imgfmt.images import describe_start

        reason = f"not an image (unrecognised format; {describe_start(data)})"
        return ImageError(reason, kind=decoding.NOT_IMAGE)
    if fmt not in readers.formats:
        accepted = " and ".join(sorted(readers.formats))
        what, why = f"format {fmt}", f"{readers.names} read {accepted} only"
    else:
        variant = _jpeg_problem(data) if fmt == "JPEG" else None
        if variant is None:
            return None
        what, why = variant, f"not every one of {readers.names} decodes it"
    if pass_through:
        message = f"{what} is not supported for pass-through: {why}"
        hint = "pack without --pass-through to re-encode it"
    else:
        message = f"{what} in the dataset: {why}"
        hint = "re-encode it: imgfmt pack without --pass-through"
    return ImageError(message, kind=decoding.UNSUPPORTED, hint=hint)


def decode_problem(
    data: bytes, readers: Readers | None = MXNET_READERS, notes: list[str] | None = None
) -> ImageError | None:
    """Why ``data`` is no image a dataset's ``readers`` decode, or None: its format must be
    one they all read (the rule ``pack --pass-through`` keeps; None: any) and it must decode
    fully (``imgfmt.images.check_decodes``, the guards ``pack`` decodes with). What ``verify
    --decode`` asks of every image."""
    from imgfmt import images

    if readers is not None:
        problem = payload_problem(data, readers, pass_through=False)
        if problem is not None:
            return problem
    try:
        images.check_decodes(data, notes=notes)
    except ImageError as err:
        return err
    return None


__all__ = ["MXNET_READERS", "Readers", "decode_problem", "identify", "payload_problem"]
