"""The one exception family of imgfmt.

Every error a user can cause (bad input, damaged files, missing objects) is an
``ImgfmtError``. Its ``str()`` is a single line that names the input, where in it
the problem is, what is wrong, and what to do. Third-party exceptions are wrapped
once, where they enter, with ``raise ... from err``.
"""

from __future__ import annotations

import re
from typing import Any


class ImgfmtError(Exception):
    """Base class: a one-line, user-facing error.

    ``path`` names the input (file, URI); ``where`` locates the problem in it
    ("record 3 at byte 1240", "line 7"); ``hint`` says what to do next.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        where: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.where = where
        self.hint = hint
        #: What the operation had done when it failed (the ``--json`` summary's fields).
        self.details: dict[str, Any] | None = None
        #: The byte offset of the record or line at fault, for programs, where known.
        self.offset: int | None = None

    @property
    def reason(self) -> str:
        """The message and its hint, without the path: for reports that name the path."""
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def __str__(self) -> str:
        parts = [p for p in (self.path, self.where) if p]
        return ": ".join([*parts, self.reason])


class FormatError(ImgfmtError):
    """An input is damaged or malformed (RecordIO framing, .idx, .lst, manifest)."""


class ImageError(ImgfmtError):
    """One image cannot be decoded or processed.

    ``kind`` sorts the reason for programs (``--json``) and for people: one of
    :data:`IMAGE_ERROR_KINDS`.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "corrupt",
        path: str | None = None,
        where: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, path=path, where=where, hint=hint)
        self.kind = kind


#: Why an image was not used: it is no image at all; a variant (or a whole format) the decoder
#: or the destination's readers do not support; its data ends early; its data is damaged; it
#: is larger than allowed (pixels or memory); it could not be read from storage.
IMAGE_ERROR_KINDS = ("not-image", "unsupported", "truncated", "corrupt", "too-large", "unreadable")


class StorageError(ImgfmtError):
    """A path or URI cannot be read or written (missing, denied, disk full)."""


class UsageError(ImgfmtError):
    """Options that cannot work together, found by the library rather than by Click."""


def excerpt(value: Any, limit: int = 60) -> str:
    """A bad value as an error message quotes it: a string as its ``repr``, anything else as
    JSON, cut to ``limit`` characters (``...`` marks the cut)."""
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text) if isinstance(value, str) else text


#: What a byte that is not UTF-8 becomes when text is read with ``errors="surrogateescape"``.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def not_utf8(text: str) -> bool:
    """Whether ``text`` (read with ``errors="surrogateescape"``) held bytes that are not
    UTF-8. One regular-expression scan: a per-character test costs more than parsing the
    line (it was 95% of reading a JSON Lines dataset)."""
    return _ESCAPED_BYTE.search(text) is not None
