"""Arguments files: ``sos-stylize @args.txt`` reads arguments from a file, one per line (the add-on's job folders
hold one), and such a file may name others.

argparse's own reading (``fromfile_prefix_chars``) follows a file that names itself until Python's recursion
limit, and turns an unreadable file into a traceback; here every file is read once per chain, and a file that is
missing, unreadable, not text or part of a cycle is refused in one line naming it. The format is argparse's: each
line is one argument, as it is (spaces included), and a relative path is taken from the working directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

from core.errors import InputError

PREFIX = "@"
# Files that name each other several times multiply their arguments: past this many, the files are refused.
MAX_ARGUMENTS = 100_000


def expand(argv: list[str]) -> tuple[list[str], list[Path]]:
    """``argv`` with every ``@FILE`` replaced by the arguments the file holds (files named inside files too), and
    the files read, in order. Raises InputError for a file that cannot be used."""
    files: list[Path] = []
    return _expand(argv, (), files, strict=True), files


def lenient_expand(argv: list[str]) -> list[str]:
    """As ``expand``, but skipping the files that cannot be read and the repeats of a cycle: what the arguments say
    as far as they can be read, for deciding how to report an error in them (``--json-progress``)."""
    return _expand(argv, (), [], strict=False)


def _expand(argv: list[str], chain: tuple[tuple[Path, Path], ...], files: list[Path], strict: bool) -> list[str]:
    """``chain``: (identity, path as named) of the files being read, outermost first."""
    expanded: list[str] = []
    for argument in argv:
        if not argument.startswith(PREFIX):
            expanded.append(argument)
            continue
        path = Path(argument[len(PREFIX):])
        key = _identity(path)
        keys = [identity for identity, _ in chain]
        if key in keys:
            if not strict:
                continue
            loop = " -> ".join(str(named) for _, named in (*chain[keys.index(key):], (key, path)))
            raise InputError(f"{path}: arguments files that name each other in a cycle ({loop}); an arguments "
                             "file may name others, but never one that leads back to it")
        try:
            lines = read_lines(path)
        except InputError:
            if strict:
                raise
            continue
        files.append(path)
        expanded += _expand(lines, (*chain, (key, path)), files, strict)
        if len(expanded) > MAX_ARGUMENTS:
            if not strict:
                return expanded[:MAX_ARGUMENTS]
            raise InputError(f"{path}: the arguments files expand to more than {MAX_ARGUMENTS} arguments (files "
                             "that name each other many times?)")
    return expanded


def _identity(path: Path) -> Path:
    """What tells two names of the same file apart from two files: the resolved path where there is one."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symbolic link loop
        return path.absolute()


def read_lines(path: Path) -> list[str]:
    """The arguments of one file: its lines, decoded as argparse does (the file system's encoding, undecodable
    bytes kept as surrogates so that file names round-trip). Raises InputError naming the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: arguments file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not an arguments file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read the arguments file ({error.strerror or error})") from None
    if b"\0" in data:
        raise InputError(f"{path}: not an arguments file (it holds NUL bytes: a binary file?); an arguments file "
                         "is text, one argument per line")
    return data.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()).splitlines()
