"""The convolutional search space of Zoph & Le 2017 (arXiv:1611.01578, §3.1–3.3, §4.1).

``CnnSpace`` and ``CnnSpec`` (no TensorFlow) are in :mod:`cnn_space.space`;
``build_model`` (Keras) is in :mod:`cnn_space.builder` and is imported only
when first used, so ``import cnn_space`` stays free of TensorFlow.
"""

from cnn_space.space import CnnLayer, CnnSpace, CnnSpec

__all__ = ["CnnLayer", "CnnSpace", "CnnSpec", "build_model"]


def __getattr__(name):
    if name == "build_model":
        from cnn_space.builder import build_model

        return build_model
    raise AttributeError(f"module 'cnn_space' has no attribute {name!r}")
