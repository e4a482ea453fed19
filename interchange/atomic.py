"""Atomic file writes: every output goes to a temporary file beside it, then is renamed over the target.

A crash or a full disk mid-write therefore never leaves a half-written file nor damages an existing one. New
files get the permissions any program gives a file a user saves (0666 less the umask: 0644 usually), not the
owner-only 0600 of the temporary file; a replaced file keeps its own.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO
from collections.abc import Iterator


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file for writing; on a clean exit it replaces ``path``.

    Args:
        path: the file to write (its folder must exist).
        mode: ``"wb"`` for bytes, ``"w"`` for UTF-8 text.

    Example:
        >>> with atomic_write(folder / "report.json", "w") as stream:
        ...     stream.write(text)
    """
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, new_file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a binary stream that replaces ``path`` once ``write`` returned (atomic_write's form
    for callers that hand over a writer function)."""
    with atomic_write(path) as stream:
        write(stream)


def new_file_mode(path: Path) -> int:
    """The replaced file's permissions, or the usual ones for a new file (mkstemp's are owner-only)."""
    if path.exists():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
