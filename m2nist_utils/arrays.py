"""Arrays read from files that nobody vouches for (introduced in notebook 01; the ``evaluate`` command).

:func:`load_npy` checks a ``.npy`` header against the bytes that follow it, and against the memory
available, before allocating anything; :func:`as_uint8` converts to uint8 only what converts without loss.
Errors are ``ValueError`` naming the file.
:func:`available_memory` and :func:`check_memory` say whether an array of a given size fits in memory.
"""

from __future__ import annotations

import math
import os
import tokenize
from typing import BinaryIO

import numpy as np


def load_npy(source: str | os.PathLike | BinaryIO, where: str | None = None, size: int | None = None):
    """One ``.npy`` array, its header checked before anything is allocated (notebook 01, ``evaluate``).

    Args:
        source: a ``.npy`` file, or a binary stream at one (an ``.npz`` member).
        where: the name errors give (default: the path).
        size: the stream's length in bytes (a file's own size by default).

    Raises:
        ValueError: not a ``.npy`` (an ``.npz`` or anything else), a damaged header, an array of Python
            objects (never unpickled), a header whose shape needs more or fewer bytes than follow it (a
            truncated file, or a claim of a huge N), or an array larger than the memory available.
    """
    if not hasattr(source, "read"):
        with open(source, "rb") as f:
            return load_npy(f, where or str(source), os.fstat(f.fileno()).st_size)
    where = where or "array"
    start = source.tell()
    magic = source.read(6)
    if magic[:4] == b"PK\x03\x04":
        raise ValueError(f"{where}: a zip archive (an .npz?), not a .npy array; save each array with np.save")
    if magic != b"\x93NUMPY":
        raise ValueError(f"{where}: not a .npy array (it starts with {magic!r})")
    source.seek(start)
    try:
        version = np.lib.format.read_magic(source)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy version {version}")
        read_header = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(source)
    except (ValueError, SyntaxError, tokenize.TokenError, EOFError, OSError) as exc:
        raise ValueError(f"{where}: damaged .npy header ({_one_line(exc)})") from exc
    if dtype.hasobject:
        raise ValueError(
            f"{where}: not a readable .npy array: holds Python objects ({dtype}), never unpickled"
        )
    needed = math.prod(shape) * dtype.itemsize
    if size is not None and size - (source.tell() - start) != needed:
        raise ValueError(
            f"{where}: the header says shape {shape} of {dtype} ({needed:,} bytes) but "
            f"{size - (source.tell() - start):,} bytes follow it (truncated or damaged file)"
        )
    check_memory(needed, where)
    source.seek(start)
    try:
        return np.lib.format.read_array(source, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise ValueError(f"{where}: not a readable .npy array ({_one_line(exc)})") from exc


def as_uint8(array: np.ndarray, where: str, expected: str = "grey levels 0..255") -> np.ndarray:
    """``array`` as uint8 when that loses nothing: integers (or whole-valued floats) in 0..255.

    Floats are not cast blindly: images scaled to 0..1 would turn black and NaN would become 0.

    Raises:
        ValueError: naming ``where``, the dtype and what is wrong (NaN, a fraction, out of range).
    """
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{where}: dtype {array.dtype}; expected {expected} (uint8)")
    if array.size == 0:
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            raise ValueError(
                f"{where}: holds NaN or infinite values (dtype {array.dtype}, {int((~finite).sum())} of "
                f"{array.size}); expected {expected}"
            )
        fractional = array != np.round(array)
        if fractional.any():
            example = array[fractional].flat[0]
            hint = " (images scaled to 0..1? multiply by 255 and save as uint8)" if "grey" in expected else ""
            raise ValueError(
                f"{where}: holds fractional values (dtype {array.dtype}, e.g. {example:g}); "
                f"expected {expected}{hint}"
            )
    low, high = array.min(), array.max()
    if low < 0 or high > 255:
        raise ValueError(
            f"{where}: values must lie in 0..255, got {low:g}..{high:g} (dtype {array.dtype}); "
            f"expected {expected}"
        )
    return array.astype(np.uint8)


def available_memory() -> int | None:
    """Bytes a new allocation can get now: Linux's ``MemAvailable``, else physical memory, else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(needed: int, what: str) -> None:
    """Refuse, before allocating, an array of ``needed`` bytes that cannot fit in the memory available."""
    available = available_memory()
    if available is not None and needed > available:
        raise ValueError(
            f"{what}: needs {_size(needed)} of memory, more than the {_size(available)} available"
        )


def _size(n: int) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def _one_line(exc: BaseException) -> str:
    # The reason may quote the damaged bytes: keep them printable.
    return " ".join(str(exc).split()).encode("ascii", "backslashreplace").decode()
