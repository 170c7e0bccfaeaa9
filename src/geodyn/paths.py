"""Output folders checked before any work starts: a run that cannot write its results fails at once, in one line."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["FolderError", "prepare_folder"]


class FolderError(ValueError):
    """A path that cannot be used as an output folder; the message is one line naming the path and the reason."""


def prepare_folder(path: str | Path) -> Path:
    """Create ``path`` (and its parents) if needed and prove it writable by creating and removing a probe file.

    Raises :class:`FolderError` for a file in the path, a read-only file system, a missing permission or any other
    OS refusal, with the OS's reason. Returns the path.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise FolderError(f"{str(p)!r} exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = f" ({str(Path(exc.filename))!r})" if exc.filename and str(exc.filename) != str(p) else ""
        raise FolderError(f"{str(p)!r} is not a writable folder: {exc.strerror or exc}{where}") from None
    return p
