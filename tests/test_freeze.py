"""Frozen graphs: export, reload, intermediate tensors, bad input (m2nist_utils.freeze, notebook 03)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from m2nist_utils import classifier, freeze, segmenter, surgery

import keras
import numpy as np
import pytest


@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(1)
    model = classifier.build_cnn()
    # Random weights are enough to compare two implementations of the same function.
    return model


@pytest.fixture(scope="module")
def frozen(cnn, tmp_path_factory):
    path = tmp_path_factory.mktemp("frozen") / "cnn_frozen.pb"
    freeze.freeze_model(cnn, path)
    return path


def digits(n=16, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28, 1), dtype=np.float32)


def test_frozen_graph_has_no_variables_and_named_io(frozen):
    graph_def = freeze.read_graph_def(frozen)
    ops = {op for _, op in freeze.graph_nodes(graph_def)}
    assert not ops & {"VarHandleOp", "ReadVariableOp", "VariableV2"}
    rows = {r["node"]: r for r in freeze.node_table(graph_def, ["image", "logits", "pool2"])}
    assert rows["image"]["op"] == "Placeholder" and rows["image"]["output shape"] == "(?, 28, 28, 1)"
    assert rows["logits"]["output shape"] == "(?, 10)" and rows["pool2"]["output shape"] == "(?, 5, 5, 8)"
    assert frozen.with_suffix(".pbtxt").is_file()


def test_reloaded_logits_equal_keras(cnn, frozen):
    x = digits()
    logits = freeze.load_frozen_graph(frozen, "image:0", "logits:0")(x).numpy()
    assert logits.shape == (16, 10)
    assert np.abs(logits - cnn(x, training=False).numpy()).max() < 1e-5


def test_pool2_on_a_64x84_input(cnn, frozen):
    x = np.random.default_rng(0).random((3, 64, 84, 1), dtype=np.float32)
    pool2, conv1 = freeze.load_frozen_graph(frozen, outputs=["pool2", "conv1"], input_shape=(64, 84, 1))(x)
    assert pool2.shape == (3, 14, 19, 8) and conv1.shape == (3, 60, 80, 8)
    encoder = keras.Model(cnn.input, cnn.get_layer("pool2").output)
    conv_only = keras.Sequential([keras.Input((64, 84, 1)), *encoder.layers[1:]])
    assert np.abs(pool2.numpy() - conv_only(x).numpy()).max() < 1e-5


def test_each_export_traces_afresh(tmp_path):
    keras.utils.set_random_seed(2)
    a, b = classifier.build_cnn(), classifier.build_cnn()
    freeze.freeze_model(a, tmp_path / "a.pb")
    freeze.freeze_model(b, tmp_path / "b.pb")
    x = digits(4)
    assert np.allclose(freeze.load_frozen_graph(tmp_path / "a.pb")(x), a(x), atol=1e-5)
    assert np.allclose(freeze.load_frozen_graph(tmp_path / "b.pb")(x), b(x), atol=1e-5)


@pytest.mark.slow
def test_plain_tensorflow_loads_it_without_the_package(frozen, tmp_path):
    x = digits(2)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, tensorflow as tf
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(open({str(frozen)!r}, "rb").read())
        f = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
        logits = f.prune("image:0", "logits:0")(tf.constant(np.load({str(tmp_path / "x.npy")!r})))
        assert "m2nist_utils" not in sys.modules
        np.save({str(tmp_path / "out.npy")!r}, logits.numpy())
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, capture_output=True)
    expected = freeze.load_frozen_graph(frozen)(x).numpy()
    assert np.abs(np.load(tmp_path / "out.npy") - expected).max() < 1e-6


def test_unknown_node_lists_the_nodes(frozen):
    with pytest.raises(ValueError, match=r"no node named 'pool3'; nodes: image, .*pool2"):
        freeze.load_frozen_graph(frozen, outputs="pool3")
    with pytest.raises(ValueError, match="no node named 'input'"):
        freeze.load_frozen_graph(frozen, inputs="input")


def test_missing_and_corrupted_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pb"):
        freeze.load_frozen_graph(tmp_path / "absent.pb")
    (tmp_path / "corrupt.pb").write_bytes(b"\x08\x96\x01 this is not a graph \xff\xff")
    with pytest.raises(ValueError, match="corrupt.pb"):
        freeze.load_frozen_graph(tmp_path / "corrupt.pb")
    (tmp_path / "empty.pb").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pb.*no nodes"):
        freeze.load_frozen_graph(tmp_path / "empty.pb")


def test_head_cannot_take_the_big_input(frozen):
    import tensorflow as tf

    logits = freeze.load_frozen_graph(frozen, outputs="logits", input_shape=(64, 84, 1))
    # flatten reshapes to 5x5x8 = 200 features; a 64x84 input gives 14x19x8 = 2128.
    with pytest.raises(tf.errors.InvalidArgumentError, match="flatten"):
        logits(np.zeros((1, 64, 84, 1), np.float32))


def layered_model():
    """Layers with constants of their own: Rescaling's scale and offset, batch-norm's epsilon."""
    keras.utils.set_random_seed(3)
    x = inputs = keras.Input((64, 84, 1), name="image")
    x = keras.layers.Rescaling(1 / 255, offset=0.1)(x)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.Conv2DTranspose(3, 4, strides=2, name="upsample")(x)
    x = keras.layers.Dense(5, name="dense")(x)
    return keras.Model(inputs, keras.layers.Softmax(name="probabilities")(x))


def test_parameter_count_equals_keras(tmp_path):
    model = layered_model()
    graph_def = freeze.freeze_model(model, tmp_path / "m.pb", output_name="probabilities", pbtxt=False)
    assert freeze.count_parameters(freeze.read_graph_def(tmp_path / "m.pb")) == model.count_params() == 271
    tags = {n.attr[freeze.WEIGHT_ATTR].s.decode() for n in graph_def.node if freeze.WEIGHT_ATTR in n.attr}
    assert tags == {weight.path for weight in model.weights}
    # A graph frozen without the record (elsewhere, or before it existed) is counted by its structure.
    for node in graph_def.node:
        node.attr.pop(freeze.WEIGHT_ATTR, None)
    assert freeze.count_parameters(graph_def) == model.count_params()


# ----------------------------------------------------------------------------------------------------
# A frozen graph is a program: only the ops our models need may run (issue 12)
# ----------------------------------------------------------------------------------------------------
def hostile_graph(path, make_hostile):
    """A .pb whose ``probabilities`` (the image, passed through) waits on ``make_hostile()``'s op.

    ``make_hostile`` builds its op inside a TF1 graph and returns it (or a tensor); the output depends on
    it by a control dependency, so that running the output would run it.
    """
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (None, 64, 84, 1), name="image")
        hostile = make_hostile(image)
        with tf.control_dependencies([hostile]):
            tf.identity(image, name="probabilities")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def write_file(target):
    import tensorflow as tf

    return lambda image: tf.io.write_file(str(target), "pwned", name="evil")


def read_file(target):
    import tensorflow as tf

    return lambda image: tf.io.read_file(str(target), name="evil")


def print_to_file(target):
    import tensorflow as tf

    return lambda image: tf.raw_ops.PrintV2(input="pwned", output_stream=f"file://{target}", name="evil")


def py_func(target):
    import tensorflow as tf

    def leak(x):
        target.write_text("pwned")
        return x

    return lambda image: tf.compat.v1.py_func(leak, [image], tf.float32, name="evil")


@pytest.mark.parametrize(
    "make, op",
    [(write_file, "WriteFile"), (read_file, "ReadFile"), (print_to_file, "PrintV2"), (py_func, "PyFunc")],
    ids=["WriteFile", "ReadFile", "PrintV2", "PyFunc"],
)
def test_hostile_ops_are_refused_before_anything_runs(tmp_path, make, op):
    target = tmp_path / "target.txt"
    if op == "ReadFile":
        target.write_text("secret")
    path = hostile_graph(tmp_path / "hostile.pb", make(target))
    with pytest.raises(ValueError, match=rf"^{path}: op {op} in node evil is not allowed$"):
        freeze.load_frozen_graph(path, "image", "probabilities", input_shape=(64, 84, 1))
    if op != "ReadFile":
        assert not target.exists()


def test_a_loop_that_never_ends_is_refused(tmp_path):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None, 64, 84, 1), tf.float32, name="image")])
    def serve(image):
        # i grows by one from 0 while i >= 0: about 2**31 iterations before it wraps.
        loop = tf.while_loop(lambda i: i >= 0, lambda i: i + 1, [tf.constant(0)], name="forever")
        with tf.control_dependencies(loop):
            return tf.identity(image, name="probabilities")

    graph_def = serve.get_concrete_function().graph.as_graph_def()
    (tmp_path / "loop.pb").write_bytes(graph_def.SerializeToString())
    with pytest.raises(ValueError, match=r"loop.pb: op (Stateless)?While in node forever is not allowed"):
        freeze.load_frozen_graph(tmp_path / "loop.pb", "image", "probabilities")


def test_a_function_library_of_disallowed_ops_is_refused(frozen, tmp_path):
    graph_def = freeze.read_graph_def(frozen)
    function = graph_def.library.function.add()
    function.signature.name = "backdoor"
    function.node_def.add(name="write", op="WriteFile")
    (tmp_path / "library.pb").write_bytes(graph_def.SerializeToString())
    with pytest.raises(ValueError, match="library.pb: op WriteFile in node backdoor/write is not allowed"):
        freeze.load_frozen_graph(tmp_path / "library.pb")


def test_outputs_that_are_not_float_are_refused(tmp_path):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, (None, 64, 84, 1), name="image")
        tf.shape(image, name="shape")
        with tf.control_dependencies([image]):
            tf.identity(tf.constant("not a probability"), name="text")
    (tmp_path / "types.pb").write_bytes(graph.as_graph_def().SerializeToString())
    for output, dtype in (("shape", "int32"), ("text", "string")):
        with pytest.raises(ValueError, match=rf"types.pb: output '{output}' is {dtype}; expected a floating"):
            freeze.load_frozen_graph(tmp_path / "types.pb", "image", output)


SERIES = {
    "cnn": lambda: classifier.build_cnn(),
    "convolutionalized": lambda: surgery.convolutionalize(classifier.build_cnn()),
    "fcn": lambda: segmenter.build_fcn(None),
    **{
        f"fcn-no-{flag}": (lambda flag=flag: segmenter.build_fcn(None, **{flag: False}))
        for flag in ("conv_head", "finetune", "context", "skips", "pixel_path")
    },
    "layered": layered_model,
}


@pytest.mark.parametrize("name", SERIES)
def test_every_graph_the_series_freezes_is_allowed(tmp_path, name):
    model = SERIES[name]()
    output = "logits" if name in ("cnn", "convolutionalized") else "probabilities"
    freeze.freeze_model(model, tmp_path / "m.pb", output_name=output, pbtxt=False)
    freeze.check_ops(freeze.read_graph_def(tmp_path / "m.pb"), tmp_path / "m.pb")
    size = (28, 28, 1) if name == "cnn" else (64, 84, 1)
    predict = freeze.load_frozen_graph(tmp_path / "m.pb", "image", output, input_shape=size)
    assert predict(np.zeros((1, *size), np.float32)).dtype == "float32"
