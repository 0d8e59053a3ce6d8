"""What operations that encode images report per image: skips with a reason and kind, and
what decoders said. Shared by ``pack`` and ``convert``."""

from __future__ import annotations

from dataclasses import dataclass


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


__all__ = ["Note", "Outcome", "Skipped"]
