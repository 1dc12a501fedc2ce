"""Keras child networks of the CNN space (Zoph & Le 2017, arXiv:1611.01578, §3.3).

:func:`build_model` turns a :class:`cnn_space.space.CnnSpec` into a Keras
functional model. Every layer is Conv2D (predicted filter height x width,
filters, stride, "same" padding) -> BatchNorm -> ReLU, and the connection
rules of §3.3 apply:

* a layer's inputs are concatenated along the depth dimension;
* inputs of different height or width are zero-padded to the largest (the
  padding is split evenly, the odd row or column going to the bottom/right);
* a layer with no chosen input takes the image;
* every layer output that no other layer uses is concatenated (padded to
  the largest height and width as well) and sent to the classifier: global
  average pooling, then a dense softmax layer.

Fixed max-pooling layers (preset v3) downsample the image and every earlier
output seen by the layers after them (see :mod:`cnn_space.space`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import keras

from cnn_space.space import POOL_SIZE, CnnSpec, _check_input_shape, layer_shapes
from nas_tf.errors import ConfigError, InvalidArchitectureError

logger = logging.getLogger(__name__)


def _pad_to(x, height: int, width: int, name: str):
    """Zero-pads ``x`` (NHWC) to ``height`` x ``width``; returns ``x`` if it fits."""
    h, w = x.shape[1], x.shape[2]
    if (h, w) == (height, width):
        return x
    dh, dw = height - h, width - w
    padding = ((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2))
    return keras.layers.ZeroPadding2D(padding, name=name)(x)


def _merge(tensors: Sequence, name: str):
    """Pads ``tensors`` to the largest height and width and concatenates them on depth."""
    if len(tensors) == 1:
        return tensors[0]
    height = max(t.shape[1] for t in tensors)
    width = max(t.shape[2] for t in tensors)
    padded = [_pad_to(t, height, width, f"{name}_pad{k}") for k, t in enumerate(tensors)]
    return keras.layers.Concatenate(axis=-1, name=f"{name}_concat")(padded)


def build_model(spec: CnnSpec, input_shape: Sequence[int] = (32, 32, 3), num_classes: int = 10,
                weight_decay: float = 1e-4) -> keras.Model:
    """Builds the Keras child network of a CNN spec (paper §3.3).

    Args:
        spec: A :class:`cnn_space.space.CnnSpec`.
        input_shape: ``(height, width, channels)`` of the images.
        num_classes: Number of classes of the softmax classifier.
        weight_decay: L2 factor on the convolution and dense kernels
            (``keras.regularizers.L2``: adds ``weight_decay * sum(w**2)`` to
            the loss); 0 turns it off. Paper §4.1 uses 1e-4.

    Returns:
        An uncompiled functional ``keras.Model`` named ``"cnn_child"`` mapping
        images ``(batch, *input_shape)`` to class probabilities
        ``(batch, num_classes)`` (float32).

    Raises:
        ConfigError: a bad ``input_shape``, ``num_classes`` or ``weight_decay``.
        InvalidArchitectureError: ``spec`` is not a CnnSpec or Keras cannot
            build it (the reason is in the message).

    Example:

    >>> from cnn_space.space import CnnSpec
    >>> spec = CnnSpec(layers=((3, 3, 24, 1, ()), (1, 5, 36, 2, (0,))))
    >>> build_model(spec, input_shape=(8, 8, 3), num_classes=4).output.shape
    (None, 4)
    """
    if not isinstance(spec, CnnSpec):
        raise InvalidArchitectureError(
            f"build_model needs a CnnSpec. Received: {type(spec).__name__}"
        )
    input_shape = _check_input_shape(input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise ConfigError(f"num_classes must be an integer > 0. Received: num_classes={num_classes}")
    if not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ConfigError(f"weight_decay must be >= 0. Received: weight_decay={weight_decay}")
    try:
        return _build(spec, input_shape, num_classes, float(weight_decay))
    except (ValueError, TypeError) as e:
        raise InvalidArchitectureError(
            f"Keras could not build the CNN child: {e}. Received: {spec.to_json()}"
        ) from e


def _build(spec: CnnSpec, input_shape, num_classes: int, weight_decay: float) -> keras.Model:
    def regularizer():
        return keras.regularizers.L2(weight_decay) if weight_decay > 0 else None

    image = keras.Input(shape=input_shape, name="image")
    # views[(source, stage)]: the output of `source` (-1: the image) as seen
    # after `stage` pooling layers.
    views: dict[tuple[int, int], object] = {(-1, 0): image}

    def view(source: int, stage: int):
        key = (source, stage)
        if key not in views:
            prev = view(source, stage - 1)
            src = "image" if source < 0 else f"layer_{source}"
            views[key] = keras.layers.MaxPooling2D(
                POOL_SIZE, strides=POOL_SIZE, padding="same", name=f"pool{stage}_{src}")(prev)
        return views[key]

    for i, layer in enumerate(spec.layers):
        stage = spec.stage_of(i)
        sources = layer.inputs or (-1,)
        x = _merge([view(j, stage) for j in sources], name=f"layer_{i}_in")
        x = keras.layers.Conv2D(
            layer.filters, (layer.filter_height, layer.filter_width), strides=layer.stride,
            padding="same", use_bias=False, kernel_initializer="he_normal",
            kernel_regularizer=regularizer(), name=f"layer_{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"layer_{i}_bn")(x)
        x = keras.layers.ReLU(name=f"layer_{i}_relu")(x)
        views[(i, stage)] = x

    final_stage = spec.stage_of(spec.num_layers - 1)
    x = _merge([view(j, final_stage) for j in spec.unused_outputs()], name="classifier")
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                 kernel_regularizer=regularizer(), name="logits")(x)
    return keras.Model(image, outputs, name="cnn_child")


def count_params(model: keras.Model) -> int:
    """Number of parameters of a built model (trainable and not, e.g. BatchNorm statistics)."""
    return int(model.count_params())


def count_flops(spec: CnnSpec, input_shape: Sequence[int] = (32, 32, 3),
                num_classes: int = 10) -> int:
    """Multiply-adds of one forward pass of a child, per image (analytic).

    Counts the convolutions (``out_h * out_w * fh * fw * in_channels *
    filters``) and the dense classifier (``channels * num_classes``); batch
    norm, ReLU, padding and pooling are not counted.

    Args:
        spec: A :class:`cnn_space.space.CnnSpec`.
        input_shape: ``(height, width, channels)`` of the images.
        num_classes: Number of classes.

    Returns:
        The number of multiply-adds (an int).

    Example:

    >>> from cnn_space.space import CnnSpec
    >>> count_flops(CnnSpec(layers=((3, 3, 24, 1, ()),)), (8, 8, 3), num_classes=10)
    41712
    """
    shapes, final = layer_shapes(spec, input_shape)
    total = 0
    for layer, shape in zip(spec.layers, shapes):
        total += (shape.out_height * shape.out_width * layer.filter_height * layer.filter_width
                  * shape.in_channels * shape.out_channels)
    return int(total + final[2] * num_classes)
