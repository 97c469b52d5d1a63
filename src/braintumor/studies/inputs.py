"""The files of a study named on the command line: files, folders (walked recursively, hidden
files left out) and .zip archives, counted and sized against the study's limits before any is
read."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .limits import LIBRARY, StudyLimits


def study_files(paths: list[str]) -> list[Path]:
    """Every file named or found in the folders named, in name order within a folder."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not inside:
                raise UsageError(f"no files found in {path}")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"no such file or folder: {path}")
    return found


def read_paths(paths: list[str], limits: StudyLimits = LIBRARY) -> list[tuple[bytes, str]]:
    """(bytes, path as a label) of every file of :func:`study_files`; StudyTooLarge before reading
    when there are too many files or bytes."""
    files = study_files(paths)
    limits.check_files(len(files))
    limits.check_bytes(sum(p.stat().st_size for p in files))
    return [(p.read_bytes(), str(p)) for p in files]


__all__ = ["study_files", "read_paths"]
