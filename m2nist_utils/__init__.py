"""Helpers for the m2nist-fcn notebook series: data, models, freezing, metrics, figures and widgets.

Modules are imported on demand (``from m2nist_utils import m2nist, models``) so that the light ones
(data, metrics) never pay for importing TensorFlow.
"""

__version__ = "0.1.0"
