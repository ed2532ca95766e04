"""TensorFlow and Keras, imported once without the C++ start-up chatter.

TensorFlow writes its oneDNN / CUDA-probe messages to the stderr file descriptor before any log level applies,
which would open every notebook with a wall of log lines. Errors still surface as Python exceptions.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_quietly():
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # the CUDA probe prints too; do it now, silently
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf, keras


class _NoRetracingNotice(logging.Filter):
    """Drop TensorFlow's "triggered tf.function retracing" notice.

    The series traces one predictor per model on purpose (``segmenter.compiled_predictor``); an ablation that
    scores many models would otherwise print the notice, which is meant for accidental retracing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


tf, keras = _import_quietly()
tf.get_logger().addFilter(_NoRetracingNotice())
