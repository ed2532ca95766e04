"""Workarounds for bugs in the libraries we use, each to be dropped once its bug is fixed.

- :class:`MultiWorkerMirroredStrategy`: Keras' ``fit`` under TensorFlow's multi-worker strategy
  (keras-team/keras#20585, tensorflow/tensorflow#72388), used by the ``train`` command (``distributed``).

  The bug: Keras 3 (3.15.1 here) calls ``strategy.reduce`` under ``tf.distribute.MultiWorkerMirroredStrategy``
  with values that only TensorFlow's other strategies accept, so ``fit`` on a cluster fails: it reduces a
  whole (images, class maps) batch at once, to learn the input shapes ("Attempt to convert a value
  (PerReplica...)"), and each step's scalar loss with ``axis=0``, a batch axis a scalar lacks ("Invalid
  reduction dimension 0"). The workaround reduces a structure value by value, and a scalar across the
  replicas only, which is what Keras means; gradients are all-reduced by TensorFlow as before.

  When to drop it: when ``tests/test_compat.py`` fails, i.e. the installed Keras fits under the plain
  strategy; then ``distributed`` subclasses ``tf.distribute.MultiWorkerMirroredStrategy`` directly.
"""

from __future__ import annotations

from ._tf import tf


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """TensorFlow's strategy, with a ``reduce`` that takes what Keras 3's ``fit`` hands it (``train``)."""

    def reduce(self, reduce_op, value, axis=None):
        parent = tf.distribute.MultiWorkerMirroredStrategy.reduce

        def one(v):
            scalar = all(t.shape.rank == 0 for t in self.experimental_local_results(v))
            return parent(self, reduce_op, v, None if scalar else axis)

        return tf.nest.map_structure(one, value)
