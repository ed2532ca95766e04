"""Atomic writes: every artifact of the series appears whole or not at all (introduced in notebook 01).

Single files go through a temporary file beside the target and ``os.replace``; a set of files that must
match (the M2NIST image/mask pair) goes through a temporary folder that is swapped in whole. Files keep
the user's umask permissions and are fsynced before the rename, so a crash or power loss leaves the old
artifact or the new one. The temporaries of target ``<name>`` are ``.<name>.tmp-*`` beside it: a failing
save removes its own, and every save removes those that an earlier, killed save left (a save holds a lock
on its temporary, so one still being written by a live process is left alone).

- :func:`atomic_save`, :func:`atomic_save_to_path`: one file; :func:`atomic_save_folder`: a set of files.
- :func:`folder_identity`: tells whether a folder was swapped while it was read.
- :func:`check_folder_target`: refuses a path that cannot become a folder written there, before any work;
  :func:`check_folder_holds_only`: refuses a folder that holds files a whole-folder save would destroy.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: stale temporaries are recognised by age instead of by lock
    fcntl = None

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
        check_folder_holds_only(folder, allowed, str(folder))
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(parent, folder.name)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{folder.name}.tmp-"))
    lock = _lock(tmp)
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
    finally:
        _unlock(lock)
    return folder


def check_folder_target(out: Path, label: str) -> None:
    """Refuse ``out`` when it cannot become a folder written here: it is a file, an ancestor is a file, or
    the nearest existing ancestor is not writable. ``label`` starts each message (``<out>``, ``--out <out>``).
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"{label}: exists and is not a folder")
    # The folder (or its temporary sibling) is created under the nearest existing ancestor: it must take it.
    for folder in Path(os.path.abspath(out)).parents:
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"{label}: {folder} is a file, not a folder")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ValueError(f"{label}: cannot write in {folder} (permission denied)")
            break


def check_folder_holds_only(
    folder: Path, allowed: Iterable[str], label: str, writer: str = "this save"
) -> None:
    """Refuse an existing ``folder`` that holds names outside ``allowed``: ``writer`` replaces all of it.

    ``label`` starts the message, ``writer`` names what replaces the folder (``generate``, say).
    """
    extra = sorted(set(os.listdir(folder)) - set(allowed))
    if extra:
        raise ValueError(
            f"{label}: holds other files ({', '.join(extra[:5])}); {writer} replaces the whole folder, "
            "so choose an empty or new one"
        )


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
    _remove_stale(path.parent, path.name)
    # The suffix stays last, since some writers (Keras) check it.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-", suffix=path.suffix)
    tmp = Path(name)
    lock = _lock(tmp, fd)
    try:
        write_tmp(tmp)
        _set_mode_and_sync(tmp)
        os.replace(tmp, path)
        _sync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _unlock(lock)
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


def _lock(path: Path, fd: int | None = None) -> int | None:
    """Hold an exclusive lock on a temporary while it is written; the OS drops it when the process dies."""
    if fcntl is None:
        if fd is not None:
            os.close(fd)  # Windows cannot rename a file that is held open
        return None
    if fd is None:
        fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing drops the lock


#: Without file locks (Windows), a temporary this old is taken for a killed save's.
STALE_AGE_S = 3600.0


def _remove_stale(parent: Path, name: str) -> None:
    """Remove the temporaries of target ``name`` that no live save holds (left by a killed one)."""
    for stale in parent.glob(f".{name}.tmp-*"):
        if not stale.is_symlink() and not _abandoned(stale):
            continue
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _abandoned(path: Path) -> bool:
    """True when no live process holds the lock of a temporary (without locks: when it is an hour old)."""
    try:
        if fcntl is None:
            return time.time() - path.stat().st_mtime > STALE_AGE_S
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # gone already, or not ours to open
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # a save that starts now makes a temporary of its own, so no lock need be kept


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
