"""Atomic writes (m2nist_utils.files, notebook 01): permissions, crashes, temporary files, folder swaps."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from m2nist_utils import files, m2nist

import numpy as np
import pytest


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _pair(n: int, seed: int, pools) -> tuple[np.ndarray, np.ndarray]:
    data = m2nist.compose_images(pools["test"], n, seed=seed)
    return data.images, m2nist.to_one_hot(data.class_maps)


#: Saves of each kind, run in a fresh process started under a given umask (files reads the umask once per
#: process, as the only portable way to read it is to set it): the modes they leave, one line of JSON.
SAVE_EVERY_KIND = """
import json, os, stat, sys
from m2nist_utils import files, m2nist
from m2nist_utils.mnist import split_pools
folder = sys.argv[1]
files.atomic_save(os.path.join(folder, "a.bin"), lambda f: f.write(b"x"))
files.atomic_save_to_path(os.path.join(folder, "b.txt"), lambda name: open(name, "w").close())
data = m2nist.compose_images(split_pools("sample", seed=0)["test"], 3, seed=0)
m2nist.save_m2nist(os.path.join(folder, "pair"), data.images, m2nist.to_one_hot(data.class_maps))
paths = ["a.bin", "b.txt", "pair", "pair/combined.npy", "pair/segmented.npy"]
print(json.dumps({p: stat.S_IMODE(os.stat(os.path.join(folder, p)).st_mode) for p in paths}))
"""


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640)])
def test_files_follow_the_umask(tmp_path, mask, expected):
    done = subprocess.run(
        [sys.executable, "-c", SAVE_EVERY_KIND, str(tmp_path)],
        preexec_fn=lambda: os.umask(mask),
        capture_output=True,
        text=True,
        check=True,
    )
    modes = json.loads(done.stdout.splitlines()[-1])
    for path in ["a.bin", "b.txt", "pair/combined.npy", "pair/segmented.npy"]:
        assert modes[path] == expected, path
    assert modes["pair"] == expected | 0o111 & ~mask


#: The system calls of a save, any of which a crash (or a kill) may interrupt.
SAVE_CALLS = ("open", "chmod", "fsync", "replace", "close")


def save_crashing_at(path, data: bytes, crash_at: int, monkeypatch) -> str | None:
    """``files.atomic_save(path, ...)`` of ``data``, interrupted at its step number ``crash_at`` (a system
    call of :data:`SAVE_CALLS`, or one of the writer's two halves); the crash's message, or None if none."""
    steps = []

    def step(name):
        steps.append(name)
        if len(steps) == crash_at + 1:
            raise KeyboardInterrupt(f"crash at {name}")  # a BaseException, as an interrupt is

    def write(f):  # the writer itself may die half-way through
        step("write")
        f.write(data[: len(data) // 2])
        step("write")
        f.write(data[len(data) // 2 :])

    with monkeypatch.context() as m:
        for name in SAVE_CALLS:
            real = getattr(os, name)
            m.setattr(os, name, lambda *a, _real=real, _name=name, **k: (step(_name), _real(*a, **k))[1])
        try:
            files.atomic_save(path, write)
        except KeyboardInterrupt as exc:
            return str(exc)
    return None


def test_a_crash_at_any_step_of_a_save_leaves_the_old_file_or_the_new_one(tmp_path, monkeypatch):
    path = tmp_path / "a.bin"
    old, new = b"old" * 1000, b"new" * 1000
    files.atomic_save(path, lambda f: f.write(old))
    outcomes = []
    for crash_at in range(100):
        crashed = save_crashing_at(path, new, crash_at, monkeypatch)
        content = path.read_bytes()
        assert content in (old, new), f"{crashed}: a mix of the old and the new file"
        assert os.listdir(tmp_path) == ["a.bin"], crashed  # no temporary left behind
        outcomes.append((crashed, content == new))
        if crashed is None:
            break
    # Every interruption before the rename keeps the old file; from the rename on the new one is in place.
    first_new = next(i for i, (_, is_new) in enumerate(outcomes) if is_new)
    assert all(not is_new for _, is_new in outcomes[:first_new]) and all(n for _, n in outcomes[first_new:])
    assert outcomes[first_new - 1][0] == "crash at replace"  # the rename is the one step that switches
    assert first_new >= 4  # the writer's two halves and the file's own sync came before it
    assert outcomes[-1] == (None, True)


def test_failed_folder_save_keeps_the_old_pair_and_leaves_no_temporary_folder(tmp_path, pools):
    target = tmp_path / "pair"
    old = _pair(4, 1, pools)
    m2nist.save_m2nist(target, *old)

    def crash(tmp):
        np.save(tmp / "combined.npy", np.zeros((4, 64, 84), np.uint8))
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        files.atomic_save_folder(target, crash, allowed=("combined.npy", "segmented.npy"))
    images, masks = m2nist.load_m2nist(target)
    assert np.array_equal(images, old[0]) and np.array_equal(masks, old[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pair"]


def test_stale_temporary_folder_is_removed_by_the_next_save(tmp_path, pools):
    stale = tmp_path / ".pair.tmp-killed"
    stale.mkdir()
    np.save(stale / "combined.npy", np.zeros((2, 64, 84), np.uint8))
    stale_file = tmp_path / ".pair.tmp-old-x"
    stale_file.write_bytes(b"left by a kill")
    unrelated = tmp_path / ".other.tmp-1"
    unrelated.mkdir()
    m2nist.save_m2nist(tmp_path / "pair", *_pair(2, 0, pools))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-1", "pair"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-aside"])
def test_folder_save_replaces_an_existing_pair(tmp_path, pools, monkeypatch, exchange):
    if not exchange:  # elsewhere than on Linux there is no renameat2: the old folder is renamed aside
        monkeypatch.setattr(files.sys, "platform", "darwin")
    target = tmp_path / "pair"
    m2nist.save_m2nist(target, *_pair(3, 1, pools))
    new = _pair(5, 2, pools)
    m2nist.save_m2nist(target, *new)
    images, masks = m2nist.load_m2nist(target)
    assert np.array_equal(images, new[0]) and np.array_equal(masks, new[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pair"]


def test_folder_save_refuses_a_folder_with_other_files(tmp_path, pools):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds other files \(notes.txt\)"):
        m2nist.save_m2nist(tmp_path, *_pair(2, 0, pools))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_reader_retries_when_the_pair_is_swapped_between_its_two_files(tmp_path, pools, monkeypatch):
    old, new = _pair(4, 1, pools), _pair(4, 2, pools)
    m2nist.save_m2nist(tmp_path / "pair", *old)
    real_read = np.lib.format.read_array
    calls = []

    def read_then_swap(file, *args, **kwargs):
        array = real_read(file, *args, **kwargs)
        calls.append(os.path.basename(file.name))
        if len(calls) == 1:  # a writer swaps in the new pair after the reader has read combined.npy
            m2nist.save_m2nist(tmp_path / "pair", *new)
        return array

    monkeypatch.setattr(np.lib.format, "read_array", read_then_swap)
    images, masks = m2nist.load_m2nist(tmp_path / "pair")
    assert np.array_equal(images, new[0]) and np.array_equal(masks, new[1])
    assert calls == ["combined.npy", "segmented.npy", "combined.npy", "segmented.npy"]


@pytest.mark.parametrize("name", ["a.bin", "m.keras"])
def test_stale_temporary_file_is_removed_by_the_next_save(tmp_path, name):
    stale = tmp_path / f".{name}.tmp-killed{os.path.splitext(name)[1]}"  # what a killed save leaves
    stale.write_bytes(b"half a file")
    unrelated = tmp_path / ".b.bin.tmp-1"
    unrelated.write_bytes(b"another target's")
    files.atomic_save(tmp_path / name, lambda f: f.write(b"x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [unrelated.name, name]


@pytest.mark.skipif(files.fcntl is None, reason="without file locks, staleness is judged by age")
def test_a_temporary_that_a_live_save_holds_is_left_alone(tmp_path):
    live = tmp_path / ".a.bin.tmp-live.bin"
    live.write_bytes(b"being written")
    fd = os.open(live, os.O_RDONLY)
    try:
        files.fcntl.flock(fd, files.fcntl.LOCK_EX)  # as _replace_after holds its own temporary
        files.atomic_save(tmp_path / "a.bin", lambda f: f.write(b"x"))
        assert live.exists()
    finally:
        os.close(fd)
    files.atomic_save(tmp_path / "a.bin", lambda f: f.write(b"y"))
    assert not live.exists()


@pytest.mark.parametrize("by_name", [False, True], ids=["atomic_save", "atomic_save_to_path"])
def test_failed_file_save_keeps_the_old_file_and_removes_its_temporary(tmp_path, by_name):
    target = tmp_path / "m.keras"
    files.atomic_save(target, lambda f: f.write(b"old"))

    def crash(f_or_name):
        if by_name:
            f_or_name = open(f_or_name, "wb")
        f_or_name.write(b"half")
        f_or_name.flush()
        raise OSError(28, "No space left on device")

    save = files.atomic_save_to_path if by_name else files.atomic_save
    with pytest.raises(OSError, match="No space"):
        save(target, crash)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]
