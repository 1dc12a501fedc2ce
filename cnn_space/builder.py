"""Keras child networks of the CNN space (Zoph & Le 2017, arXiv:1611.01578, §3.3).

:func:`build_model` turns a :class:`cnn_space.space.CnnSpec` into a Keras
functional model ``image -> CnnBody -> GlobalAveragePooling2D -> Dense
softmax``. :class:`CnnBody` holds every convolutional layer of the child:
each is Conv2D (predicted filter height x width, filters, stride, "same"
padding, no bias) -> BatchNorm -> ReLU, and the connection rules of §3.3
apply:

* a layer's inputs are concatenated along the depth dimension;
* inputs of different height or width are zero-padded to the largest height
  and, independently, the largest width (strides may differ in height and
  width, so inputs need not be square; the padding is split evenly, the odd
  row or column going to the bottom/right);
* a layer with no chosen input takes the image;
* every layer output that no other layer uses is concatenated (padded to
  the largest height and width as well) and sent to the classifier: global
  average pooling, then a dense softmax layer.

Fixed max-pooling layers (preset v3) downsample the image and every earlier
output seen by the layers after them (see :mod:`cnn_space.space`).

Why one Keras layer for all convolutions: a search builds thousands of
children, and Keras spends about 2-4 ms of Python per layer object it
creates and connects. Measured on a 2-core CPU (variables not initialised,
8x8 images): a random 39-layer v3 child with one Keras layer per conv layer
and per input join took ~0.25 s of CPU to build; with :class:`CnnBody` it
takes ~0.025 s. The computation is the same ops. (Initialising the variables
adds ~0.5 s for 39 layers, mostly Keras' random initializers in eager mode.)
:meth:`CnnBody.layer_outputs` exposes every layer's output for inspection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import keras

from cnn_space.spec import POOL_SIZE, CnnSpec, _check_input_shape, layer_shapes
from nas_tf.errors import ConfigError, InvalidArchitectureError

logger = logging.getLogger(__name__)

#: Per-layer weight names of :class:`CnnBody`, in creation order.
WEIGHT_KINDS = ("kernel", "gamma", "beta", "moving_mean", "moving_variance")


def merge_inputs(tensors, pools):
    """Joins the inputs of one layer (paper §3.3), with ``keras.ops``.

    Each tensor is first max-pooled (2x2, stride 2, "same") ``pools[k]``
    times (to cross the fixed pooling layers of preset v3), then zero-padded
    to the largest height and width among them (evenly, the odd row or column
    at the bottom/right); the results are concatenated along depth.

    Args:
        tensors: A list of tensors ``(batch, h_k, w_k, c_k)`` with static
            height and width.
        pools: One int >= 0 per tensor.

    Returns:
        A tensor ``(batch, max h, max w, sum c)`` (the tensor itself when
        there is one and nothing to pool).

    Raises:
        ValueError: no tensors, or ``pools`` does not match them.

    Example:

    >>> a, b = keras.ops.ones((1, 4, 4, 2)), keras.ops.ones((1, 2, 2, 3))
    >>> tuple(merge_inputs([a, b], [0, 0]).shape)
    (1, 4, 4, 5)
    """
    if not tensors or len(tensors) != len(pools):
        raise ValueError(
            f"merge_inputs needs one pool count per tensor. Received: {len(tensors)} tensors, "
            f"pools={list(pools)}"
        )
    pooled = []
    for x, times in zip(tensors, pools):
        for _ in range(times):
            x = keras.ops.max_pool(x, POOL_SIZE, strides=POOL_SIZE, padding="same")
        pooled.append(x)
    if len(pooled) == 1:
        return pooled[0]
    height = max(int(x.shape[1]) for x in pooled)
    width = max(int(x.shape[2]) for x in pooled)
    out = []
    for x in pooled:
        dh, dw = height - int(x.shape[1]), width - int(x.shape[2])
        if dh or dw:
            x = keras.ops.pad(x, ((0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2), (0, 0)))
        out.append(x)
    return keras.ops.concatenate(out, axis=-1)


@keras.saving.register_keras_serializable(package="nas_tf")
class CnnBody(keras.layers.Layer):
    """All convolutional layers of a CNN child, wired by the rules of paper §3.3.

    Layer ``i`` of the spec is Conv2D (``filter_height x filter_width``,
    ``filters``, strides ``(stride_height, stride_width)``, "same" padding, no
    bias) -> BatchNorm -> ReLU;
    it computes exactly what ``keras.layers.Conv2D(use_bias=False)``,
    ``keras.layers.BatchNormalization()`` (momentum 0.99, epsilon 1e-3,
    statistics in float32) and ReLU compute. Its inputs are joined by
    :func:`merge_inputs`; the output of the body is the join of every layer
    output no other layer uses (the classifier's input, before pooling).

    Args:
        spec: A :class:`cnn_space.space.CnnSpec` or its JSON form.
        weight_decay: L2 factor on every kernel (0: none).
        momentum: Momentum of the batch-norm moving mean and variance.
        epsilon: Added to the variance in batch norm.
        synchronized: Batch norm uses the statistics of the global batch
            under a ``tf.distribute`` strategy (``keras.ops.moments``'s
            ``synchronized``); False: each replica its own.
        **kwargs: Base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: Images ``(batch, height, width, channels)`` with static
            height and width.
        training: Whether batch norm uses the batch statistics (and updates
            the moving ones) or the moving statistics.

    Returns:
        A tensor ``(batch, h, w, c)``: the classifier's input, with ``(h, w,
        c)`` as :func:`cnn_space.space.layer_shapes` infers.

    Raises:
        InvalidArchitectureError: ``spec`` is not a CnnSpec (or its JSON).
        ValueError: a negative ``weight_decay``; inputs without a static
            height and width.

    Example:

    >>> spec = CnnSpec(layers=((3, 3, 4, 2, ()), (1, 1, 5, 1, ())))
    >>> tuple(CnnBody(spec)(keras.ops.ones((2, 8, 8, 3))).shape)
    (2, 8, 8, 9)
    """

    def __init__(self, spec, weight_decay=0.0, momentum=0.99, epsilon=1e-3,
                 synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(spec, dict):
            spec = CnnSpec.from_json(spec)
        if not isinstance(spec, CnnSpec):
            raise InvalidArchitectureError(
                f"CnnBody needs a CnnSpec. Received: {type(spec).__name__}"
            )
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0. Received: weight_decay={weight_decay}")
        self.spec = spec
        self.weight_decay = float(weight_decay)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.synchronized = bool(synchronized)

    def _shapes(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "CnnBody needs images (batch, height, width, channels) with a static height "
                f"and width. Received: input_shape={tuple(input_shape)}"
            )
        return layer_shapes(self.spec, tuple(input_shape[1:]))

    def build(self, input_shape):
        shapes, _ = self._shapes(input_shape)
        regularizer = keras.regularizers.L2(self.weight_decay) if self.weight_decay else None
        kernel_init = keras.initializers.HeNormal()
        ones, zeros = keras.initializers.Ones(), keras.initializers.Zeros()
        weights = []
        for i, (layer, shape) in enumerate(zip(self.spec.layers, shapes)):
            size = (layer.filters,)
            weights.append((
                self.add_weight(
                    shape=(layer.filter_height, layer.filter_width, shape.in_channels,
                           layer.filters),
                    name=f"layer_{i}_kernel", initializer=kernel_init, regularizer=regularizer),
                self.add_weight(shape=size, name=f"layer_{i}_gamma", initializer=ones,
                                autocast=False),
                self.add_weight(shape=size, name=f"layer_{i}_beta", initializer=zeros,
                                autocast=False),
                self.add_weight(shape=size, name=f"layer_{i}_moving_mean", initializer=zeros,
                                trainable=False, autocast=False),
                self.add_weight(shape=size, name=f"layer_{i}_moving_variance",
                                initializer=ones, trainable=False, autocast=False),
            ))
        self._layer_weights = weights

    def compute_output_shape(self, input_shape):
        _, final = self._shapes(input_shape)
        return (input_shape[0], *final)

    def _conv_bn_relu(self, i, x, training):
        layer = self.spec.layers[i]
        kernel, gamma, beta, moving_mean, moving_variance = self._layer_weights[i]
        # The explicit cast makes layer_outputs() (outside __call__'s autocast) work under
        # mixed precision; inside __call__ the kernel is already in the compute dtype.
        kernel = keras.ops.cast(kernel, self.compute_dtype)
        x = keras.ops.conv(x, kernel, strides=layer.strides, padding="same")
        x = keras.ops.cast(x, "float32")
        if training:
            mean, variance = keras.ops.moments(x, axes=[0, 1, 2],
                                               synchronized=self.synchronized)
            moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
            moving_variance.assign(
                moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            mean, variance = moving_mean, moving_variance
        x = keras.ops.batch_normalization(x, mean, variance, axis=-1, offset=beta, scale=gamma,
                                          epsilon=self.epsilon)
        return keras.ops.cast(keras.ops.relu(x), self.compute_dtype)

    def _forward(self, images, training):
        spec = self.spec
        outputs = []  # (tensor, stage) per layer

        def gather(sources, stage):
            if not sources:
                return merge_inputs([images], [stage])
            return merge_inputs([outputs[j][0] for j in sources],
                                [stage - outputs[j][1] for j in sources])

        for i, layer in enumerate(spec.layers):
            stage = spec.stage_of(i)
            outputs.append((self._conv_bn_relu(i, gather(layer.inputs, stage), training), stage))
        final = gather(spec.unused_outputs(), spec.stage_of(spec.num_layers - 1))
        return [x for x, _ in outputs], final

    def call(self, inputs, training=None):
        return self._forward(inputs, training)[1]

    def layer_outputs(self, images, training=False):
        """Every layer's output and the classifier's input, for inspection.

        Args:
            images: Images ``(batch, height, width, channels)``.
            training: As in :meth:`call` (True updates the moving statistics).

        Returns:
            ``(outputs, classifier_input)``: a list with the output of every
            layer of the spec, and the join of the unused ones.
        """
        if not self.built:
            self.build(tuple(images.shape))
        return self._forward(keras.ops.cast(images, self.compute_dtype), training)

    def layer_variables(self, i):
        """The variables of layer ``i``: ``(kernel, gamma, beta, moving_mean, moving_variance)``.

        Raises:
            ValueError: the body is not built yet.
            IndexError: no layer ``i``.
        """
        if not self.built:
            raise ValueError(f"CnnBody {self.name!r} is not built yet; call it on images first.")
        return tuple(self._layer_weights[i])

    def get_config(self):
        return {
            **super().get_config(),
            "spec": self.spec.to_json(),
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "synchronized": self.synchronized,
        }


def build_model(spec: CnnSpec, input_shape: Sequence[int] = (32, 32, 3), num_classes: int = 10,
                weight_decay: float = 1e-4,
                synchronized_batch_norm: bool = False) -> keras.Model:
    """Builds the Keras child network of a CNN spec (paper §3.3).

    Args:
        spec: A :class:`cnn_space.space.CnnSpec`.
        input_shape: ``(height, width, channels)`` of the images.
        num_classes: Number of classes of the softmax classifier.
        weight_decay: L2 factor on the convolution and dense kernels
            (``keras.regularizers.L2``: adds ``weight_decay * sum(w**2)`` to
            the loss); 0 turns it off. Paper §4.1 uses 1e-4.
        synchronized_batch_norm: Batch norm over the global batch of a
            multi-device child (see :class:`CnnBody`).

    Returns:
        An uncompiled functional ``keras.Model`` named ``"cnn_child"``:
        ``image`` -> :class:`CnnBody` ``"convolutions"`` ->
        ``GlobalAveragePooling2D`` ``"global_pool"`` -> ``Dense`` softmax
        ``"classifier"``, mapping images ``(batch, *input_shape)`` to class
        probabilities ``(batch, num_classes)`` (float32).

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
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not (
        weight_decay >= 0
    ):
        raise ConfigError(f"weight_decay must be >= 0. Received: weight_decay={weight_decay}")
    try:
        image = keras.Input(shape=input_shape, name="image")
        x = CnnBody(spec, weight_decay=float(weight_decay),
                    synchronized=bool(synchronized_batch_norm), name="convolutions")(image)
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
        probs = keras.layers.Dense(
            num_classes, activation="softmax", dtype="float32", name="classifier",
            kernel_regularizer=keras.regularizers.L2(weight_decay) if weight_decay else None)(x)
        return keras.Model(image, probs, name="cnn_child")
    except (ValueError, TypeError) as e:
        raise InvalidArchitectureError(
            f"Keras could not build the CNN child: {e}. Received: {spec.to_json()}"
        ) from e


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
