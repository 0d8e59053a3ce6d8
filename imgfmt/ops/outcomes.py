"""What operations that encode images report per image: skips with a reason and kind, and
what decoders said. Shared by ``pack`` and ``convert``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from imgfmt.errors import ImageError, ImgfmtError

log = logging.getLogger("imgfmt.ops")

#: The log level of an item a run skipped: above warnings, so that ``-q`` (errors only) still
#: names every skipped file; shown as a warning, since the run goes on.
SKIPPED = logging.WARNING + 5


@dataclass
class Skipped:
    """An image that was not written, and why."""

    path: str
    reason: str
    #: Why, for programs: one of ``imgfmt.errors.IMAGE_ERROR_KINDS`` (or ``label``).
    kind: str = "corrupt"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind, "reason": self.reason}


@dataclass
class Note:
    """Something a decoder said about an image that was written or skipped (a warning)."""

    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True)
class Outcome:
    """One image's result from a worker: the payload, or why there is none; what the
    decoders said about it; whether it was re-encoded on the way."""

    payload: bytes | None
    reason: str | None = None
    kind: str | None = None
    notes: tuple[str, ...] = ()
    reencoded: bool = False

    @classmethod
    def failed(cls, err: ImgfmtError, notes: list[str] | tuple[str, ...] = ()) -> Outcome:
        """The outcome of an image whose processing raised ``err``."""
        kind = err.kind if isinstance(err, ImageError) else "corrupt"
        return cls(None, err.reason, kind, tuple(notes))


def crashed(_item: object, why: str) -> Outcome:
    """The outcome of an image whose decoder killed its worker (``BatchPool``'s callback)."""
    return Outcome(None, f"the decoder crashed on this image: {why}", "corrupt")


def record(outcome: Outcome, name: str, notes: list[Note], skipped: list[Skipped]) -> bool:
    """Keep what the decoders said about the image ``name`` and, when it was not written,
    why (each logged: notes with ``-v``, skips as warnings); True when it has a payload."""
    for note in outcome.notes:
        notes.append(Note(name, note))
        log.info("%s: decoder said: %s", name, note)
    if outcome.payload is not None:
        return True
    reason = outcome.reason or "unknown error"
    skipped.append(Skipped(name, reason, outcome.kind or "corrupt"))
    log.log(SKIPPED, "skipped %s: %s", name, reason)
    return False


__all__ = ["SKIPPED", "Note", "Outcome", "Skipped", "crashed", "record"]
