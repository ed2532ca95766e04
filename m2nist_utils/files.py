"""Atomic writes: every artifact of the series appears whole or not at all (introduced in notebook 01).

Single files go through a temporary file beside the target and ``os.replace``; a set of files that must
match (the M2NIST image/mask pair) goes through a temporary folder that is swapped in whole. Files keep
the user's umask permissions and are fsynced before the rename, so a crash or power loss leaves the old
artifact or the new one. One writer per target at a time: a save removes the temporary files and folders
(``.<name>.tmp-*``) that an earlier, killed save left beside its target.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

_UMASK: int | None = None


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


def atomic_save_folder(
    folder: str | os.PathLike, write: Callable[[Path], None], allowed: Iterable[str]
) -> Path:
    """Call ``write(tmp_folder)`` on a temporary sibling folder, then swap it in for ``folder`` whole.

    Used where several files must match (``m2nist.save_m2nist``'s pair). A reader sees the old set or
    the new one: on Linux the two folders are exchanged in one ``renameat2(RENAME_EXCHANGE)``; elsewhere
    the old folder is renamed aside first, which leaves a moment with no folder (never a mixed one).
    ``folder`` may exist only if it holds nothing but names in ``allowed``, since all of it is replaced.
    Temporary folders left by a killed save are removed by the next one.
    """
    folder = Path(folder)
    if folder.is_symlink():
        folder = folder.resolve()
    folder = Path(os.path.abspath(folder))
    if folder.exists():
        if not folder.is_dir():
            raise ValueError(f"{folder}: exists and is not a folder")
        extra = sorted(set(os.listdir(folder)) - set(allowed))
        if extra:
            raise ValueError(
                f"{folder}: holds other files ({', '.join(extra[:5])}); this save replaces the whole "
                "folder, so choose an empty or new one"
            )
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(parent, folder.name)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{folder.name}.tmp-"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        write(tmp)
        for child in tmp.iterdir():
            _set_mode_and_sync(child)
        _sync_dir(tmp)
        if folder.exists():
            if _exchange(tmp, folder):
                # tmp now holds the old set.
                _sync_dir(parent)
                shutil.rmtree(tmp, ignore_errors=True)
                return folder
            aside = Path(tempfile.mkdtemp(dir=parent, prefix=f".{folder.name}.tmp-old-"))
            os.rename(folder, aside / "old")
            os.rename(tmp, folder)
            _sync_dir(parent)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(tmp, folder)
            _sync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def folder_identity(folder: str | os.PathLike) -> tuple[int, int] | None:
    """(device, inode) of ``folder``, or None if missing: a reader compares it before and after reading
    a set of files, since :func:`atomic_save_folder` swaps in a new folder (a new inode) each time."""
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


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
        _set_mode_and_sync(tmp)
        os.replace(tmp, path)
        _sync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        # The only portable way to read the umask is to set it and set it back; do it once.
        old = os.umask(0)
        os.umask(old)
        _UMASK = old
    return _UMASK


def _set_mode_and_sync(path: Path) -> None:
    """Give a temporary file the mode a plain ``open`` would (mkstemp makes 0600) and fsync it."""
    if path.is_dir():
        return
    os.chmod(path, 0o666 & ~_umask())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        if os.name != "nt":  # Windows cannot fsync a read-only handle; its rename is what we have.
            raise
    finally:
        os.close(fd)


def _sync_dir(folder: Path) -> None:
    """fsync a folder so a rename in it survives a power loss (POSIX only; Windows cannot open folders)."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # some file systems do not sync folders
            raise
    finally:
        os.close(fd)


def _remove_stale(parent: Path, name: str) -> None:
    for stale in parent.glob(f".{name}.tmp-*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step with Linux's renameat2(RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))
