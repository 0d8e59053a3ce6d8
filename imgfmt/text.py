"""Numbers as people read them in summaries and messages: counts with their noun, sizes in
B/KB/MB/GB. Shared by the command line and the library's own reports (stats); cheap to
import, so ``imgfmt --help`` stays fast."""

from __future__ import annotations


def count_of(n: int, plural: str) -> str:
    """``3 records``, ``1 record``, ``1 index entry``, ``1 image decoded``: the last word in
    ``s`` of ``plural`` is made singular for 1."""
    if n != 1:
        return f"{n} {plural}"
    words = plural.split(" ")
    for i in range(len(words) - 1, -1, -1):
        word = words[i]
        if word.endswith("ies"):
            words[i] = word[:-3] + "y"
            break
        if word.endswith("s") and not word.endswith("ss"):
            words[i] = word[:-1]
            break
    return f"1 {' '.join(words)}"


def human_bytes(n: float) -> str:
    """``512 B``, ``3.4 MB``: decimal units, as disks and S3 count them."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


__all__ = ["count_of", "human_bytes"]
