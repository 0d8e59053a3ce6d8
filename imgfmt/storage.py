"""Where bytes come from and go to: local paths (the default) and, later, ``s3://`` URIs.

Outputs are atomic: they are written under a temporary name in the destination
folder and renamed into place only when complete, so a reader never sees a
half-written file and an interrupted run leaves nothing at the final path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from typing import IO, Any

from imgfmt.errors import StorageError

#: Prefix of temporary files; hidden, and recognisable for clean-up.
TEMP_PREFIX = ".imgfmt-tmp-"

#: Buffer for local file streams; large enough that per-call overhead vanishes.
IO_BUFFER_SIZE = 1 << 20


def describe_os_error(err: OSError) -> str:
    """A short reason and fix for an OSError, without the noisy errno prefix."""
    if isinstance(err, FileNotFoundError):
        return "no such file or folder (check the path)"
    if isinstance(err, PermissionError):
        return "permission denied (check the file's permissions)"
    if isinstance(err, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(err, NotADirectoryError):
        return "a part of the path is not a folder"
    if err.errno == errno.ENOSPC:
        return "no space left on device (free some space or write elsewhere)"
    if err.errno == errno.EROFS:
        return "read-only file system (write elsewhere)"
    return err.strerror or str(err)


def open_input(path: str | os.PathLike[str], mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """Open a local file for reading; failures become a one-line StorageError."""
    try:
        if "b" in mode:
            return open(path, mode, buffering=IO_BUFFER_SIZE, **kwargs)
        return open(path, mode, encoding=kwargs.pop("encoding", "utf-8"), **kwargs)
    except OSError as err:
        raise StorageError(describe_os_error(err), path=os.fspath(path)) from err


class AtomicOutputs:
    """A group of output files that appear at their final paths together, or not at all.

    >>> with AtomicOutputs() as out:
    ...     rec = out.open("data.rec", "wb")
    ...     idx = out.open("data.idx", "w")
    ...     ...  # write; an exception leaves neither file behind

    Files are committed in the order they were opened.
    """

    def __init__(self) -> None:
        self._files: list[tuple[str, str, IO[Any]]] = []  # (final, temp, handle)
        self._closed = False

    def open(self, path: str | os.PathLike[str], mode: str = "wb") -> IO[Any]:
        final = os.fspath(path)
        folder, name = os.path.split(os.path.abspath(final))
        temp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(4)}-{name}")
        try:
            if "b" in mode:
                handle: IO[Any] = open(temp, mode, buffering=IO_BUFFER_SIZE)
            else:
                handle = open(temp, mode, encoding="utf-8", newline="")
        except OSError as err:
            raise StorageError(
                f"cannot create output: {describe_os_error(err)}", path=final
            ) from err
        self._files.append((final, temp, handle))
        return handle

    def commit(self) -> None:
        """Flush, sync and rename every file into place."""
        try:
            for final, _temp, handle in self._files:
                try:
                    handle.flush()
                    os.fsync(handle.fileno())
                    handle.close()
                except OSError as err:
                    raise StorageError(
                        f"cannot write output: {describe_os_error(err)}", path=final
                    ) from err
            for final, temp, _handle in self._files:
                try:
                    os.replace(temp, final)
                except OSError as err:
                    raise StorageError(
                        f"cannot move output into place: {describe_os_error(err)}", path=final
                    ) from err
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Close and delete every temporary file; nothing reaches a final path."""
        for _final, temp, handle in self._files:
            with contextlib.suppress(OSError):
                handle.close()
            with contextlib.suppress(OSError):
                os.unlink(temp)
        self._closed = True

    def __enter__(self) -> AtomicOutputs:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """One output file that appears at ``path`` only when the block completes."""
    with AtomicOutputs() as outputs:
        yield outputs.open(path, mode)


def sibling(path: str, new_suffix: str) -> str:
    """``data/train.rec`` -> ``data/train.idx``: same stem, other suffix."""
    stem, _ext = os.path.splitext(path)
    return stem + new_suffix
