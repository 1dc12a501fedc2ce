"""Training-free ("zero-cost") scores of an untrained Keras model.

* :func:`naswot` - Mellor et al. 2021, "Neural Architecture Search without
  Training" (ICML): each ReLU unit gives every image of a batch a binary code
  (is the unit active?). With c the codes of one ReLU layer (images x units),
  the kernel K = sum over ReLU layers of c c^T + (1-c)(1-c)^T, i.e. entry
  (a, b) is N_A minus the Hamming distance between the codes of images a and
  b, N_A the number of units. The score is log|det K| (slogdet). As in the
  authors' code the network runs in training mode (BatchNorm uses the batch's
  statistics).
* :func:`synflow` - Tanaka et al. 2020 (NeurIPS), as Abdelfattah et al. 2021
  ("Zero-Cost Proxies for Lightweight NAS", ICLR) score NAS-Bench-201: every
  parameter replaced by its absolute value (the "sign trick": the model's own
  weights are untouched, the absolute values are passed statelessly), an
  all-ones input, R = sum of the outputs, score = sum over conv and dense
  kernels of |theta * dR/dtheta|. BatchNorm runs in inference mode (at
  initialisation, scale 1/sqrt(1 + eps): the benchmark's code removes BN).

Both take any Keras model; :func:`cnn_space.nb201.model.build_nb201_model`
names one ``keras.layers.ReLU`` per op, which :func:`naswot` collects.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from nas_tf.errors import ConfigError


def relu_layers(model: keras.Model) -> list:
    """The model's ``keras.layers.ReLU`` layers, in graph order."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]


def _check_batch(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim < 2 or images.shape[0] < 2:
        raise ConfigError("naswot needs a batch of at least 2 images (batch, ...). "
                          f"Received: images.shape={images.shape}")
    return images


def activation_codes_model(model: keras.Model) -> keras.Model:
    """A model with the same input whose outputs are every ReLU layer's output.

    Raises:
        ConfigError: the model has no ``keras.layers.ReLU`` layer.
    """
    relus = relu_layers(model)
    if not relus:
        raise ConfigError("naswot needs a model with keras.layers.ReLU layers (their "
                          f"activation patterns are the codes). Received: model={model.name!r} "
                          "without any")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, [layer.output for layer in relus])


def naswot_kernel(codes) -> np.ndarray:
    """K = sum_l c_l c_l^T + (1 - c_l)(1 - c_l)^T over binary code matrices c_l.

    Args:
        codes: One or more arrays (batch, ...) of 0/1 (or booleans).
    """
    if isinstance(codes, np.ndarray):
        codes = [codes]
    kernel = None
    for c in codes:
        c = np.asarray(c).reshape(len(c), -1).astype(np.float64)
        k = c @ c.T + (1.0 - c) @ (1.0 - c).T
        kernel = k if kernel is None else kernel + k
    return kernel


def naswot_score(kernel) -> float:
    """log|det K| (``-inf`` when K is singular)."""
    sign, logdet = np.linalg.slogdet(np.asarray(kernel, np.float64))
    return float(logdet) if sign != 0 else -math.inf


def naswot(model: keras.Model, images, *, training: bool = True,
           codes_model: keras.Model | None = None) -> float:
    """The NASWOT score of ``model`` on one batch of ``images``.

    One forward pass collects every ReLU's output; a unit's code is 1 where
    its output is positive (as the authors' hook on the ReLU input, x > 0).
    The model's variables are left unchanged (BatchNorm's moving statistics
    included).

    Args:
        model: An untrained model with ``keras.layers.ReLU`` layers.
        images: A batch (batch, height, width, channels), at least 2 images.
        training: Run BatchNorm with the batch's statistics (as the paper).
        codes_model: :func:`activation_codes_model` of ``model``, if built already.

    Raises:
        ConfigError: fewer than 2 images, or no ReLU layer.
    """
    images = _check_batch(images)
    codes_model = codes_model or activation_codes_model(model)
    # stateless: BatchNorm's moving statistics stay as they were (a later synflow sees them).
    outputs, _ = codes_model.stateless_call(
        [v.value for v in codes_model.trainable_variables],
        [v.value for v in codes_model.non_trainable_variables], images, training=training)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    kernel = np.zeros((len(images), len(images)))
    for out in outputs:
        kernel += keras.ops.convert_to_numpy(_layer_kernel(out))
    return naswot_score(kernel)


def _layer_kernel(activations):
    """One layer's c c^T + (1-c)(1-c)^T as (N + s s^T) / 2, s = 2c - 1 in +-1.

    One float32 matmul; exact while N < 2^24 units per layer.
    """
    ops = keras.ops
    flat = ops.reshape(activations, (ops.shape(activations)[0], -1))
    signs = ops.where(flat > 0, 1.0, -1.0)
    return (ops.cast(ops.shape(flat)[1], "float32") + ops.matmul(signs, ops.transpose(signs))) / 2


def _scored_kernels(model: keras.Model) -> list:
    """The conv and dense kernels (the parameters the benchmark's synflow sums)."""
    out = []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            out.append(layer.kernel)
    return out


def synflow(model: keras.Model, input_shape=None) -> float:
    """The SynFlow score of ``model`` (sum over conv/dense kernels of |theta dR/dtheta|).

    Runs in the model's own dtype: build it with ``dtype="float64"`` (as the
    reference code) when float32 could overflow; a non-finite score is
    returned as ``inf`` for the caller to see.

    Args:
        model: A model with one image input.
        input_shape: (height, width, channels); default the model's input shape.
    """
    import tensorflow as tf

    shape = tuple(input_shape or model.inputs[0].shape[1:])
    dtype = model.inputs[0].dtype
    ones = tf.ones((1,) + shape, dtype=dtype)
    trainable = [tf.abs(tf.convert_to_tensor(v)) for v in model.trainable_variables]
    non_trainable = [tf.convert_to_tensor(v) for v in model.non_trainable_variables]
    scored_ids = {id(v) for v in _scored_kernels(model)}
    scored = [k for k, v in enumerate(model.trainable_variables) if id(v) in scored_ids]
    with tf.GradientTape() as tape:
        tape.watch(trainable)
        output, _ = model.stateless_call(trainable, non_trainable, ones, training=False)
        total = tf.reduce_sum(output)
    grads = tape.gradient(total, [trainable[k] for k in scored])
    score = 0.0
    for k, g in zip(scored, grads):
        if g is not None:
            score += float(tf.reduce_sum(tf.abs(trainable[k] * g)).numpy())
    return score if math.isfinite(score) else math.inf
