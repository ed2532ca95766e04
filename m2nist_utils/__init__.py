"""Helpers for the m2nist-fcn notebook series, one module per stage of the story.

- ``config``: the quick/full switch, artifact folders, device and versions (every notebook).
- ``mnist``: MNIST digit sources and the train/val/test digit pools (notebook 01).
- ``m2nist``: the M2NIST format, the generator and its checks (notebook 01);
  ``article_generator``: the article's generator, for measurement only (notebook 01); ``clutter``: fragments
  of other digits on the background (notebook 09).
- ``classifier``: the article's CNN and its training (notebook 02).
- ``freeze``: frozen GraphDefs, written and read back safely (notebook 03).
- ``surgery``: the CNN reused as an FCN on 64x84 images (notebook 04).
- ``segmenter``: our FCN, its losses, prediction and scores; ``training``: its data stream and fit;
  ``stability``: the learning-rate schedule, the range test and the collapse check (notebook 09);
  ``pipeline``: the tf.data input pipeline; ``stream``: the same data as NumPy, for any Keras backend
  (notebook 05).
- ``artifacts``: paths of data and models and the one load-or-create cache (every notebook).
- ``metrics``, ``results``, ``claims``: IoU, the committed figures and the checks of conclusions drawn
  from them; ``viz``, ``panels``, ``charts``, ``widgets``: figures and
  the interactive mask viewer (notebook 08).
- ``files``, ``arrays``: atomic writes, safe ``.npy`` reading; ``distributed``: the ``train`` command and
  multi-worker training; ``compat``: workarounds for bugs in Keras and TensorFlow, each until it is fixed;
  ``arguments``: the command line's argument types; ``__main__``: the command line; ``_keras``: Keras on
  the backend ``KERAS_BACKEND`` names (TensorFlow unless set).

Modules are imported on demand (``from m2nist_utils import m2nist, segmenter``) so that the light ones
(data, metrics) never pay for importing TensorFlow. The network, its training and scores run on Keras'
TensorFlow, JAX or PyTorch backend; frozen graphs, surgery, ``tf.data`` and ``tf.distribute`` are
TensorFlow's.
"""

__version__ = "0.1.0"
