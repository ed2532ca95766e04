"""TensorFlow and Keras, imported once without the C++ start-up chatter; TensorFlow's errors on one line.

TensorFlow writes its oneDNN / CUDA-probe messages to the stderr file descriptor before any log level applies,
which would open every notebook with a wall of log lines. Errors still surface as Python exceptions;
:func:`error_line` cuts their messages down to the cause, for the command line and for result rows.
"""

from __future__ import annotations

import logging
import os
import re
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


def error_line(message: str, node: bool = False) -> str:
    """The first root cause of a TensorFlow error message, on one line (notebooks 05 and 07).

    Drops what TensorFlow wraps around it: the Python stack of the op's definition, ``(defined @ ...)``,
    ``(0) INVALID_ARGUMENT:`` and ``/job:localhost/replica:0/task:0/`` prefixes, documentation links.
    With ``node``, the failing node leads, when the message names it: ``at node Reshape: <cause>``.
    """
    noise = re.compile(r"^(Graph execution error|Detected at node|File |Cf\. |\[\[|\d+ root error|$)")
    lines = [line.strip() for line in message.splitlines()]
    cause = next((line for line in lines if not noise.match(line)), message.strip())
    cause = re.sub(r"^\(\d+\) \w+:\s*|\s*\(defined @ [^)]*\)", "", cause)
    cause = cause.replace("/job:localhost/replica:0/task:0/", "/").strip()
    where = re.search(r"Detected at node (\S+)", message) if node else None
    # A frozen graph's nodes are imported under the name scope "frozen/" (freeze.load_frozen_graph).
    return f"at node {where.group(1).removeprefix('frozen/')}: {cause}" if where else cause
