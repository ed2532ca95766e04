"""Frozen graphs: a Keras model as one TensorFlow GraphDef with its weights folded into constants.

Introduced in notebook 03; notebook 04 cuts the frozen CNN open, notebook 05 freezes the FCN.

Every layer of the frozen model gets a stable node of its own name (an ``Identity`` on the layer's
output), so ``pool2`` can be fetched as ``pool2:0`` whatever suffixes TensorFlow gave the ops around it.

- :func:`freeze_model`, :func:`read_graph_def`: write a model as a ``.pb`` (and ``.pbtxt``), read one back.
- :data:`ALLOWED_OPS`, :func:`check_ops`: the ops a graph may hold before anything of it is imported.
- :func:`load_frozen_graph`: a graph's tensors as a callable; :func:`count_parameters`, :func:`graph_nodes`,
  :func:`node_table`: what a graph holds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from ._tf import keras, tf
from .files import atomic_save


def freeze_model(
    model: keras.Model,
    path: str | os.PathLike,
    input_name: str = "image",
    output_name: str = "logits",
    layer_outputs: bool = True,
    pbtxt: bool = True,
) -> tf.compat.v1.GraphDef:
    """Write ``model`` as a binary GraphDef (``.pb``, plus a readable ``.pbtxt`` beside it).

    Args:
        model: a built Keras model with one input and one output.
        path: the ``.pb`` file to write (atomically).
        input_name: name of the input placeholder, fed as ``<input_name>:0``; shape (None, *input shape).
        output_name: name of the output node, fetched as ``<output_name>:0``.
        layer_outputs: also give every layer's output a node named after the layer (``conv1``, ``pool2``...).
        pbtxt: also write the text form, for reading.

    Returns:
        The frozen GraphDef.
    """
    named = {}
    if layer_outputs:
        named = {
            layer.name: layer.output
            for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer) and layer.output is not model.outputs[0]
        }
    # The probe keeps the model's name so that the op names in the graph do not depend on how many
    # Keras models this session has built before.
    probe = (
        keras.Model(model.inputs, [model.outputs[0], *named.values()], name=model.name) if named else model
    )
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=input_name)

    # A fresh tf.function per export: a reused one can hand back an older, more general trace.
    @tf.function(input_signature=[spec])
    def serve(image):
        outputs = probe(image, training=False)
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        result = {output_name: tf.identity(outputs[0], name=output_name)}
        for (name, _), tensor in zip(named.items(), outputs[1:]):
            result[name] = tf.identity(tensor, name=name)
        return result

    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = serve.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    _mark_weights(graph_def, concrete, model)
    path = Path(path)
    atomic_save(path, lambda f: f.write(graph_def.SerializeToString()))
    if pbtxt:
        atomic_save(
            path.with_suffix(".pbtxt"), lambda f: f.write(text_format.MessageToString(graph_def).encode())
        )
    return graph_def


def read_graph_def(path: str | os.PathLike) -> tf.compat.v1.GraphDef:
    """Parse a binary GraphDef; a missing or corrupted file gets an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"frozen graph not found: {path}")
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except DecodeError as exc:
        raise ValueError(f"{path}: not a binary TensorFlow GraphDef ({exc})") from exc
    if not graph_def.node:
        raise ValueError(f"{path}: the GraphDef holds no nodes (empty or not a frozen graph)")
    return graph_def


WEIGHT_ATTR = "_keras_weight"


def _mark_weights(graph_def: tf.compat.v1.GraphDef, concrete, model: keras.Model) -> None:
    """Tag every constant that was a variable with the Keras weight it holds (``conv1/kernel``).

    The function's captured resource handles *are* its variables; ``convert_variables_to_constants_v2``
    turns the placeholder of each into a ``Const`` of the same name. The tag is an attribute whose name
    starts with an underscore, which TensorFlow keeps and ignores, so plain TensorFlow still loads the graph.
    """
    paths = {id(weight.value.handle): weight.path for weight in model.weights}
    captured = {
        internal.op.name: paths.get(id(external), "")
        for external, internal in concrete.graph.captures
        if external.dtype == tf.resource
    }
    for node in graph_def.node:
        if node.op == "Const" and node.name in captured:
            node.attr[WEIGHT_ATTR].s = captured[node.name].encode()


def count_parameters(graph_def: tf.compat.v1.GraphDef) -> int:
    """Number of weights folded into a frozen graph: equal to Keras' ``count_params()`` (notebook 03).

    Counting every floating-point constant would also count the constants that layers compute with
    (``Rescaling``'s scale and offset, ``BatchNormalization``'s epsilon...), so a Keras model of 35,773
    weights came out as 35,779. Matching constants by the op that reads them (filters, biases, matmul
    weights) breaks on the next layer type (batch-norm statistics reach their op through arithmetic). So
    :func:`freeze_model` records, at freeze time, which constants were variables, and only those count. A
    graph frozen elsewhere carries no such record: there a weight is recognised as a constant read only
    through ``Identity`` ops, which is what ``convert_variables_to_constants_v2`` leaves of a variable read.
    """
    consts = [node for node in graph_def.node if node.op == "Const"]
    weights = [node for node in consts if WEIGHT_ATTR in node.attr]
    if not weights:
        consumers: dict[str, set[str]] = {}
        for node in graph_def.node:
            for name in node.input:
                consumers.setdefault(_node_name(name.lstrip("^")), set()).add(node.op)
        floats = (tf.float32.as_datatype_enum, tf.float16.as_datatype_enum, tf.float64.as_datatype_enum)
        weights = [
            node
            for node in consts
            if node.attr["value"].tensor.dtype in floats and consumers.get(node.name) == {"Identity"}
        ]
    return sum(int(np.prod([d.size for d in node.attr["value"].tensor.tensor_shape.dim])) for node in weights)


def graph_nodes(graph_def: tf.compat.v1.GraphDef) -> list[tuple[str, str]]:
    """(name, op) of every node, in graph order."""
    return [(node.name, node.op) for node in graph_def.node]


def node_table(graph_def: tf.compat.v1.GraphDef, names: list[str] | None = None) -> list[dict[str, str]]:
    """Rows (node, op, output shape) for the nodes in ``names`` (in that order; default: all, in graph order).

    Shapes come from importing the graph and reading TensorFlow's static shape inference.
    """
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    rows = []
    for node in graph_def.node:
        if names is not None and node.name not in names:
            continue
        outputs = graph.get_operation_by_name(node.name).outputs
        shape = (
            str(tuple(outputs[0].shape.as_list())) if outputs and outputs[0].shape.rank is not None else ""
        )
        rows.append({"node": node.name, "op": node.op, "output shape": shape.replace("None", "?")})
    if names is not None:
        rows.sort(key=lambda row: names.index(row["node"]))
    return rows


# The ops a frozen graph of this series may hold. Derived by freezing every model the series freezes
# (build_cnn, build_fcn and each of its ablation variants, convolutionalize, the test models with
# Rescaling, BatchNormalization and a Dense on a 4-D map) and listing their ops, plus the near relatives a
# Keras layer of the same kinds gives (average pooling, depthwise convolution, fused batch-norm, other
# activations). A GraphDef is a program: anything outside this list (WriteFile, ReadFile, PrintV2,
# PyFunc, While, a call into a function...) is refused before the graph is imported, let alone run.
ALLOWED_OPS = frozenset(
    {
        # inputs, constants, plumbing
        "Placeholder", "PlaceholderWithDefault", "Const", "Identity", "IdentityN", "NoOp", "Cast",
        # convolutions, transposed convolutions, pooling, resizing
        "Conv2D", "Conv2DBackpropInput", "DepthwiseConv2dNative", "MaxPool", "AvgPool", "BiasAdd",
        "SpaceToBatchND", "BatchToSpaceND", "ResizeBilinear", "ResizeNearestNeighbor",
        "MatMul", "BatchMatMulV2", "FusedBatchNormV3",
        # element-wise maths and activations
        "Add", "AddV2", "Sub", "Mul", "RealDiv", "Neg", "Square", "Sqrt", "Rsqrt", "Log", "Exp",
        "Maximum", "Minimum", "Relu", "Relu6", "Elu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
        # shapes
        "Shape", "Reshape", "Squeeze", "ExpandDims", "Pack", "ConcatV2", "Slice", "StridedSlice", "Pad",
        "Transpose", "GatherV2", "Prod",
    }
)  # fmt: skip


def check_ops(graph_def: tf.compat.v1.GraphDef, path: str | os.PathLike = "graph") -> None:
    """Refuse a GraphDef holding any op outside :data:`ALLOWED_OPS` (notebook 03).

    Every node counts, not only those an output needs, and so does every node of every function in the
    graph's library (our graphs have none; a library of allowed ops is harmless, as no allowed op calls one).

    Raises:
        ValueError: ``<path>: op <Op> in node <name> is not allowed``, for the first such node.
    """
    nodes = [(node.name, node.op) for node in graph_def.node]
    for function in graph_def.library.function:
        nodes += [(f"{function.signature.name}/{node.name}", node.op) for node in function.node_def]
    for name, op in nodes:
        if op not in ALLOWED_OPS:
            raise ValueError(f"{path}: op {op} in node {name} is not allowed")


def load_frozen_graph(
    path: str | os.PathLike,
    inputs: str = "image",
    outputs: str | list[str] = "logits",
    input_shape: tuple[int, ...] | None = None,
):
    """Reload a frozen GraphDef as a callable TensorFlow function.

    Args:
        path: the ``.pb`` file.
        inputs: the input node (``"image"`` or ``"image:0"``).
        outputs: one node name or a list of them; any intermediate node works (``"pool2"``).
        input_shape: a new input shape (H, W, C) to map onto ``inputs`` (``input_map``), e.g. (64, 84, 1)
            for the M2NIST images; only the nodes needed for ``outputs`` are imported, so a head that
            cannot take the new shape (``flatten``, the dense layers) is simply left out.

    Returns:
        A function: float32 tensor (N, *shape) -> one tensor, or a list when ``outputs`` is a list.

    Raises:
        ValueError: an op outside :data:`ALLOWED_OPS` anywhere in the graph (checked before anything is
            imported), a missing node, an input shape the graph cannot take, or an output that is not
            floating-point.
    """
    graph_def = read_graph_def(path)
    check_ops(graph_def, path)
    names = {node.name for node in graph_def.node}
    wanted = [outputs] if isinstance(outputs, str) else list(outputs)
    input_node = _node_name(inputs)
    for name in [input_node, *map(_node_name, wanted)]:
        if name not in names:
            raise ValueError(
                f"{path}: no node named {name!r}; nodes: {', '.join(n for n, _ in graph_nodes(graph_def))}"
            )
    for node in graph_def.node:
        for name in node.input:
            if _node_name(name.lstrip("^")) not in names:
                raise ValueError(f"{path}: node {node.name!r} reads {name!r}, which the graph does not hold")
    if input_shape is None:
        shape = next(node for node in graph_def.node if node.name == input_node).attr["shape"].shape
        input_shape = tuple(d.size if d.size >= 0 else None for d in shape.dim)[1:]
    graph_def = _ancestors(graph_def, [_node_name(n) for n in wanted])

    def import_graph(image):
        tf.compat.v1.import_graph_def(graph_def, input_map={f"{input_node}:0": image}, name="frozen")

    spec = tf.TensorSpec((None, *input_shape), tf.float32)
    try:
        wrapped = tf.compat.v1.wrap_function(import_graph, [spec])
    except (ValueError, TypeError, tf.errors.OpError) as exc:
        # A malformed node (missing attributes, wrong input types) fails here too, with TF's reason.
        raise ValueError(
            f"{path}: the graph does not import with input {input_node!r} of shape {(None, *input_shape)} "
            f"float32 ({' '.join(str(exc).split())})"
        ) from exc
    fetches = [wrapped.graph.get_tensor_by_name(f"frozen/{_tensor_name(n)}") for n in wanted]
    for name, fetch in zip(wanted, fetches):
        # Callers compute with the outputs as float maps (probabilities, logits, features).
        if not fetch.dtype.is_floating:
            raise ValueError(f"{path}: output {name!r} is {fetch.dtype.name}; expected a floating-point map")
    function = wrapped.prune(feeds=wrapped.inputs, fetches=fetches)
    if isinstance(outputs, str):
        return lambda x: function(tf.convert_to_tensor(x, tf.float32))[0]
    return lambda x: function(tf.convert_to_tensor(x, tf.float32))


def _ancestors(graph_def: tf.compat.v1.GraphDef, outputs: list[str]) -> tf.compat.v1.GraphDef:
    """The sub-graph that ``outputs`` depend on (what the deprecated ``extract_sub_graph`` did)."""
    nodes = {node.name: node for node in graph_def.node}
    keep, todo = set(), list(outputs)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo += [_node_name(i.lstrip("^")) for i in nodes[name].input]
    sub = tf.compat.v1.GraphDef()
    sub.versions.CopyFrom(graph_def.versions)
    sub.library.CopyFrom(graph_def.library)
    sub.node.extend(node for node in graph_def.node if node.name in keep)
    return sub


def _node_name(name: str) -> str:
    return name.split(":")[0]


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"
