"""m2nist_utils.arrays: reading .npy files nobody vouches for, and converting to uint8 without loss.

The messages are what a reader of a failed notebook or command sees, so these tests check them whole: the
file named, the sizes in readable units, the cause on one printable line (issue 19: planted bugs in these
messages went unnoticed by the tests that only matched a word of them).
"""

from __future__ import annotations

import io
import os
import re

from m2nist_utils import arrays

import numpy as np
import pytest


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_a_stream_without_a_name_is_called_array():
    with pytest.raises(ValueError, match=r"^array: not a \.npy array \(it starts with b'hello!'\)$"):
        arrays.load_npy(io.BytesIO(b"hello!, world"))


def test_a_file_is_named_by_its_path(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(b"PK\x03\x04 and more")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: a zip archive \(an \.npz\?\)"):
        arrays.load_npy(path)


def test_a_damaged_header_is_reported_on_one_printable_line():
    good = npy_bytes(np.zeros((2, 3), np.uint8))
    # The header's dict, damaged with a line break and a byte that is not ASCII.
    damaged = good.replace(b"'descr'", b"'de\nsc\xff'")
    with pytest.raises(ValueError) as caught:
        arrays.load_npy(io.BytesIO(damaged), "f.npy")
    message = str(caught.value)
    assert message.startswith("f.npy: damaged .npy header (") and message.endswith(")")
    assert "\n" not in message and message.isascii() and "\\xff" in message


def test_a_truncated_file_says_how_many_bytes_the_header_needs(tmp_path):
    path = tmp_path / "t.npy"
    path.write_bytes(npy_bytes(np.zeros((4, 5), np.float32))[:-8])
    with pytest.raises(ValueError) as caught:
        arrays.load_npy(path)
    assert str(caught.value) == (
        f"{path}: the header says shape (4, 5) of float32 (80 bytes) but 72 bytes follow it "
        "(truncated or damaged file)"
    )


def test_an_array_of_objects_is_refused_unread():
    data = npy_bytes(np.array([{"a": 1}], dtype=object))
    with pytest.raises(
        ValueError, match=r"^o\.npy: not a readable \.npy array: holds Python objects \(object\)"
    ):
        arrays.load_npy(io.BytesIO(data), "o.npy")


def test_a_good_array_reads_back_from_a_stream_at_an_offset():
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    stream = io.BytesIO(b"before" + npy_bytes(array))
    stream.seek(6)
    assert np.array_equal(arrays.load_npy(stream, "s", len(npy_bytes(array))), array)


@pytest.mark.parametrize(
    "needed, available, sizes",
    [
        (3 * 10**9, 2 * 10**9, ("3.0 GB", "2.0 GB")),
        (10**8, 99 * 10**6, ("0.1 GB", "99.0 MB")),
        (25 * 10**6, 12_345_678, ("25.0 MB", "12.3 MB")),
        (2_500 * 10**9, 10**12, ("2,500.0 GB", "1,000.0 GB")),
    ],
)
def test_check_memory_names_both_sizes_in_readable_units(monkeypatch, needed, available, sizes):
    monkeypatch.setattr(arrays, "available_memory", lambda: available)
    with pytest.raises(ValueError) as caught:
        arrays.check_memory(needed, "big.npy")
    assert str(caught.value) == f"big.npy: needs {sizes[0]} of memory, more than the {sizes[1]} available"


def test_check_memory_lets_through_what_fits_or_what_cannot_be_known(monkeypatch):
    monkeypatch.setattr(arrays, "available_memory", lambda: 1000)
    arrays.check_memory(1000, "exactly.npy")  # equal fits
    monkeypatch.setattr(arrays, "available_memory", lambda: None)
    arrays.check_memory(10**15, "unknown.npy")


def test_available_memory_reads_linux_memavailable_in_bytes(monkeypatch, tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 900 kB\nMemFree: 100 kB\nMemAvailable: 300 kB\n")
    real_open = open
    monkeypatch.setattr(
        "builtins.open",
        lambda path, *a, **k: real_open(meminfo if path == "/proc/meminfo" else path, *a, **k),
    )
    assert arrays.available_memory() == 300 * 1024


@pytest.mark.parametrize(
    "values, message",
    [
        (
            np.array([1.5]),
            r"^x: holds fractional values \(dtype float64, e\.g\. 1\.5\); expected grey levels 0\.\.255 "
            r"\(images scaled to 0\.\.1\? multiply by 255 and save as uint8\)$",
        ),
        (
            np.array([np.nan, 1.0]),
            r"^x: holds NaN or infinite values \(dtype float64, 1 of 2\); expected grey levels 0\.\.255$",
        ),
        (
            np.array([-1, 256]),
            r"^x: values must lie in 0\.\.255, got -1\.\.256 \(dtype int64\); expected grey levels 0\.\.255$",
        ),
        (np.array(["a"]), r"^x: dtype <U1; expected grey levels 0\.\.255 \(uint8\)$"),
    ],
)
def test_as_uint8_refuses_what_would_lose_information(values, message):
    with pytest.raises(ValueError, match=message):
        arrays.as_uint8(values, "x")


def test_as_uint8_keeps_whole_values_and_edges():
    out = arrays.as_uint8(np.array([0.0, 255.0, 7.0]), "x")
    assert out.dtype == np.uint8 and out.tolist() == [0, 255, 7]
    assert arrays.as_uint8(np.array([], np.float32), "x").dtype == np.uint8
    # A class map's own wording has no hint about images scaled to 0..1.
    with pytest.raises(ValueError, match=r"e\.g\. 0\.5\); expected classes 0\.\.10$"):
        arrays.as_uint8(np.array([0.5]), "x", expected="classes 0..10")


def test_version_2_files_read_and_unknown_versions_are_named():
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=(2, 0))
    data = buffer.getvalue()
    assert np.array_equal(arrays.load_npy(io.BytesIO(data), "v2.npy", len(data)), array)
    future = data[:6] + bytes([3, 0]) + data[8:]
    with pytest.raises(
        ValueError, match=r"^v3\.npy: damaged \.npy header \(unsupported \.npy version \(3, 0\)\)$"
    ):
        arrays.load_npy(io.BytesIO(future), "v3.npy")


def test_a_damaged_header_message_is_numpys_reason_on_one_line():
    good = npy_bytes(np.zeros((2, 3), np.uint8))
    damaged = good.replace(b"'descr'", b"'de\nsc'")
    try:
        stream = io.BytesIO(damaged)
        np.lib.format.read_magic(stream)
        np.lib.format.read_array_header_1_0(stream)
    except ValueError as exc:
        reason = " ".join(str(exc).split())
    with pytest.raises(ValueError) as caught:
        arrays.load_npy(io.BytesIO(damaged), "f.npy")
    assert str(caught.value) == f"f.npy: damaged .npy header ({reason})"


def test_a_truncated_member_of_a_stream_counts_from_where_it_starts():
    data = npy_bytes(np.zeros((4, 5), np.float32))
    stream = io.BytesIO(b"x" * 100 + data)
    stream.seek(100)
    with pytest.raises(ValueError, match=r"\(80 bytes\) but 72 bytes follow it"):
        arrays.load_npy(stream, "member.npy", len(data) - 8)


def test_an_array_too_large_for_memory_is_refused_naming_the_file(monkeypatch):
    monkeypatch.setattr(arrays, "available_memory", lambda: 10)
    data = npy_bytes(np.zeros((4, 5), np.float32))
    with pytest.raises(
        ValueError, match=r"^big\.npy: needs 0\.0 MB of memory, more than the 0\.0 MB available$"
    ):
        arrays.load_npy(io.BytesIO(data), "big.npy", len(data))


class FailingRead(io.BytesIO):
    """A stream whose data cannot be read after its header (a disk error, say)."""

    def readinto(self, buffer):
        raise OSError("disk\n  error")

    def read(self, size=-1):
        if size is None or size < 0 or size >= 1000:  # the header is read in pieces under 1000 bytes
            raise OSError("disk\n  error")
        return super().read(size)


def test_a_read_error_after_a_good_header_names_the_file_on_one_line():
    data = npy_bytes(np.zeros((40, 50), np.float32))
    with pytest.raises(ValueError, match=r"^d\.npy: not a readable \.npy array \(disk error\)$"):
        arrays.load_npy(FailingRead(data), "d.npy", len(data))


def test_sizes_round_to_a_tenth_of_the_unit():
    for n, text in [(1_050_000, "1.1 MB"), (1_050_000_000, "1.1 GB")]:
        with pytest.raises(ValueError, match=rf"needs {re.escape(text)} of memory"):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(arrays, "available_memory", lambda: 1)
                arrays.check_memory(n, "x")


def test_without_proc_meminfo_the_physical_memory_is_available(monkeypatch):
    real_open = open

    def no_meminfo(path, *args, **kwargs):
        if path == "/proc/meminfo":
            raise OSError("no /proc here")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_meminfo)
    assert arrays.available_memory() == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_nan_and_infinity_are_counted():
    with pytest.raises(ValueError, match=r"\(dtype float64, 2 of 3\)"):
        arrays.as_uint8(np.array([np.nan, np.inf, 1.0]), "x")


@pytest.mark.parametrize("values, shown", [([0, 256], "0..256"), ([-1, 255], "-1..255")])
def test_one_value_out_of_range_is_enough_to_refuse(values, shown):
    with pytest.raises(ValueError, match=rf"got {shown} "):
        arrays.as_uint8(np.array(values), "x")
