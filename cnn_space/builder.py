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


def _pooled_size(size: int, times: int) -> int:
    for _ in range(times):
        size = -(-size // POOL_SIZE)
    return size


@keras.saving.register_keras_serializable(package="nas_tf")
class SkipMerge(keras.layers.Layer):
    """Joins the inputs of one layer of a CNN child (paper §3.3).

    Each input is first max-pooled (2x2, stride 2, "same") ``pools[k]`` times
    (to cross the fixed pooling layers of preset v3), then zero-padded to the
    largest height and width among the inputs (evenly, the odd row or column
    at the bottom/right), and the results are concatenated along depth.

    Args:
        pools: One int >= 0 per input: how many pooling layers lie between
            that input's producer and the consumer.
        **kwargs: Base ``keras.layers.Layer`` arguments (``name``, ...).

    Call arguments:
        inputs: A list of ``len(pools)`` tensors ``(batch, h_k, w_k, c_k)``
            with static height and width.

    Returns:
        A tensor ``(batch, max h, max w, sum c)``.

    Raises:
        ValueError: ``pools`` is empty or negative, or the number of inputs
            does not match.

    Example:

    >>> a, b = keras.Input((4, 4, 2)), keras.Input((2, 2, 3))
    >>> SkipMerge(pools=(0, 0))([a, b]).shape
    (None, 4, 4, 5)
    """

    def __init__(self, pools, **kwargs):
        super().__init__(**kwargs)
        pools = tuple(int(p) for p in pools)
        if not pools or any(p < 0 for p in pools):
            raise ValueError(f"SkipMerge needs one pool count >= 0 per input. Received: {pools}")
        self.pools = pools

    def _sizes(self, shapes):
        if len(shapes) != len(self.pools):
            raise ValueError(
                f"SkipMerge expects {len(self.pools)} inputs. Received: {len(shapes)} inputs"
            )
        return [(_pooled_size(s[1], p), _pooled_size(s[2], p), s[3])
                for s, p in zip(shapes, self.pools)]

    def compute_output_shape(self, input_shape):
        sizes = self._sizes(list(input_shape))
        channels = sum(s[2] for s in sizes)
        return (input_shape[0][0], max(s[0] for s in sizes), max(s[1] for s in sizes), channels)

    def call(self, inputs):
        inputs = list(inputs)
        sizes = self._sizes([tuple(x.shape) for x in inputs])
        height, width = max(s[0] for s in sizes), max(s[1] for s in sizes)
        out = []
        for x, times, (h, w, _) in zip(inputs, self.pools, sizes):
            for _ in range(times):
                x = keras.ops.max_pool(x, POOL_SIZE, strides=POOL_SIZE, padding="same")
            if (h, w) != (height, width):
                dh, dw = height - h, width - w
                x = keras.ops.pad(
                    x, ((0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2), (0, 0)))
            out.append(x)
        return out[0] if len(out) == 1 else keras.ops.concatenate(out, axis=-1)

    def get_config(self):
        return {**super().get_config(), "pools": list(self.pools)}


@keras.saving.register_keras_serializable(package="nas_tf")
class ConvBnRelu(keras.layers.Layer):
    """One layer of a CNN child: Conv2D ("same") -> BatchNorm -> ReLU (paper §3.1).

    Equivalent to ``keras.layers.Conv2D(use_bias=False)``, then
    ``keras.layers.BatchNormalization()`` (same defaults: momentum 0.99,
    epsilon 1e-3, statistics in float32), then ReLU, in one layer: a child
    has up to 39 of them, and one Keras layer instead of three makes building
    a child about three times faster.

    Args:
        filters: Number of output channels (> 0).
        kernel_size: ``(height, width)`` of the filter.
        strides: Stride in both spatial dimensions (>= 1).
        weight_decay: L2 factor on the kernel (0: none).
        momentum: Momentum of the moving mean and variance.
        epsilon: Added to the variance.
        **kwargs: Base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: A tensor ``(batch, height, width, channels)``.
        training: Whether to normalise with the batch statistics (and update
            the moving ones) or with the moving statistics.

    Returns:
        A tensor ``(batch, ceil(height / strides), ceil(width / strides), filters)``.

    Raises:
        ValueError: filters, kernel_size or strides not positive, or a
            negative weight_decay.

    Example:

    >>> layer = ConvBnRelu(8, (3, 5), strides=2)
    >>> tuple(layer(keras.ops.ones((1, 7, 7, 3))).shape)
    (1, 4, 4, 8)
    """

    def __init__(self, filters, kernel_size, strides=1, weight_decay=0.0, momentum=0.99,
                 epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        kernel_size = tuple(int(k) for k in kernel_size)
        if int(filters) <= 0 or len(kernel_size) != 2 or min(kernel_size) <= 0 or (
            int(strides) <= 0
        ):
            raise ValueError(
                "ConvBnRelu needs filters > 0, a (height, width) kernel_size > 0 and strides > 0. "
                f"Received: filters={filters}, kernel_size={kernel_size}, strides={strides}"
            )
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0. Received: weight_decay={weight_decay}")
        self.filters = int(filters)
        self.kernel_size = kernel_size
        self.strides = int(strides)
        self.weight_decay = float(weight_decay)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        shape = (self.filters,)
        self.kernel = self.add_weight(
            shape=(*self.kernel_size, input_shape[-1], self.filters), name="kernel",
            initializer="he_normal",
            regularizer=keras.regularizers.L2(self.weight_decay) if self.weight_decay else None)
        self.gamma = self.add_weight(shape=shape, name="gamma", initializer="ones",
                                     autocast=False)
        self.beta = self.add_weight(shape=shape, name="beta", initializer="zeros",
                                    autocast=False)
        self.moving_mean = self.add_weight(shape=shape, name="moving_mean", initializer="zeros",
                                           trainable=False, autocast=False)
        self.moving_variance = self.add_weight(shape=shape, name="moving_variance",
                                               initializer="ones", trainable=False,
                                               autocast=False)

    def compute_output_shape(self, input_shape):
        def out(size):
            return None if size is None else -(-size // self.strides)

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), self.filters)

    def call(self, inputs, training=None):
        x = keras.ops.conv(inputs, self.kernel, strides=self.strides, padding="same")
        x = keras.ops.cast(x, "float32")
        if training:
            mean, variance = keras.ops.moments(x, axes=[0, 1, 2])
            self.moving_mean.assign(
                self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        x = keras.ops.batch_normalization(x, mean, variance, axis=-1, offset=self.beta,
                                          scale=self.gamma, epsilon=self.epsilon)
        return keras.ops.cast(keras.ops.relu(x), self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": self.strides,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
        }


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
        raise ConfigError(
            f"num_classes must be an integer > 0. Received: num_classes={num_classes}")
    if not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ConfigError(f"weight_decay must be >= 0. Received: weight_decay={weight_decay}")
    try:
        return _build(spec, input_shape, num_classes, float(weight_decay))
    except (ValueError, TypeError) as e:
        raise InvalidArchitectureError(
            f"Keras could not build the CNN child: {e}. Received: {spec.to_json()}"
        ) from e


def _build(spec: CnnSpec, input_shape, num_classes: int, weight_decay: float) -> keras.Model:
    image = keras.Input(shape=input_shape, name="image")
    outputs: dict[int, tuple] = {-1: (image, 0)}  # source -> (tensor, stage)

    def merge(sources, stage, name):
        tensors = [outputs[j][0] for j in sources]
        pools = [stage - outputs[j][1] for j in sources]
        if len(tensors) == 1 and pools == [0]:
            return tensors[0]
        return SkipMerge(pools, name=name)(tensors)

    for i, layer in enumerate(spec.layers):
        stage = spec.stage_of(i)
        x = merge(layer.inputs or (-1,), stage, name=f"layer_{i}_inputs")
        x = ConvBnRelu(layer.filters, (layer.filter_height, layer.filter_width),
                       strides=layer.stride, weight_decay=weight_decay, name=f"layer_{i}")(x)
        outputs[i] = (x, stage)

    final_stage = spec.stage_of(spec.num_layers - 1)
    x = merge(spec.unused_outputs(), final_stage, name="classifier_inputs")
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    probs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="classifier",
        kernel_regularizer=keras.regularizers.L2(weight_decay) if weight_decay else None)(x)
    return keras.Model(image, probs, name="cnn_child")


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
