"""Atomic writes: every artifact of the series appears whole or not at all (introduced in notebook 01)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_save(path: str | os.PathLike, write: Callable) -> Path:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place.

    An interrupted or failing write leaves the old file (or none) behind, never half a file.
    """
    return _replace_after(path, lambda tmp: _write_binary(tmp, write))


def atomic_save_to_path(path: str | os.PathLike, save: Callable[[str], None]) -> Path:
    """Like :func:`atomic_save` for writers that want a file name (``keras.Model.save``, say).

    The temporary name keeps the suffix of ``path``, since some writers check it.
    """
    return _replace_after(path, lambda tmp: save(str(tmp)))


def _write_binary(tmp: Path, write: Callable) -> None:
    with open(tmp, "wb") as f:
        write(f)


def _replace_after(path: str | os.PathLike, write_tmp: Callable[[Path], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.tmp-", suffix=path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write_tmp(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
