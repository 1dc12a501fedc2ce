"""Portable CNN children: the same network made of built-in Keras layers only.

A search builds children with :class:`cnn_space.builder.CnnBody` (one custom
layer for all convolutions, fast to build). A model that holds it needs
``import cnn_space`` before ``keras.saving.load_model``, so it cannot be
served or converted where nas_tf is not installed. :func:`portable_model`
rebuilds a trained child from stock layers — ``Conv2D`` (no bias, "same"
padding) -> ``BatchNormalization`` -> ``ReLU`` per layer, ``MaxPooling2D``
for the fixed pools, ``ZeroPadding2D`` + ``Concatenate`` for the joins of
paper §3.3 (Zoph & Le 2017, arXiv:1611.01578) — copies every weight, and
checks that both compute the same function. The result loads with plain
``keras.saving.load_model`` in a process that never imports this project,
and exports as a TensorFlow SavedModel (``model.export``) for serving.
"""

from __future__ import annotations

import keras
import numpy as np

from cnn_space.builder import CnnBody
from cnn_space.space import POOL_SIZE

_layers = keras.layers


def _strides(layer) -> tuple[int, int]:
    """(stride height, stride width) of a layer of a spec."""
    if hasattr(layer, "stride_height"):
        return int(layer.stride_height), int(layer.stride_width)
    stride = layer.stride
    return (int(stride[0]), int(stride[1])) if isinstance(stride, tuple) else (stride, stride)


def _find(model: keras.Model, kind) -> list:
    """Layers of type ``kind`` in ``model`` and the models nested in it, in order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, kind):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(_find(layer, kind))
    return found


def _stock_body(body: CnnBody, image):
    """The stock-layer graph of ``body`` applied to ``image``; returns the
    classifier's input and the (conv, batch-norm) layer pairs, in spec order."""
    spec = body.spec
    outs, pairs = [], []

    def pool(t, times, name):
        for k in range(times):
            t = _layers.MaxPooling2D(POOL_SIZE, POOL_SIZE, padding="same",
                                     name=f"{name}_pool{k}")(t)
        return t

    def join(tensors, name):
        if len(tensors) == 1:
            return tensors[0]
        height = max(int(t.shape[1]) for t in tensors)
        width = max(int(t.shape[2]) for t in tensors)
        padded = []
        for k, t in enumerate(tensors):
            dh, dw = height - int(t.shape[1]), width - int(t.shape[2])
            if dh or dw:
                t = _layers.ZeroPadding2D(((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)),
                                          name=f"{name}_pad{k}")(t)
            padded.append(t)
        return _layers.Concatenate(axis=-1, name=f"{name}_concat")(padded)

    def gather(sources, stage, name):
        if not sources:
            return pool(image, stage, f"{name}_image")
        return join([pool(outs[j][0], stage - outs[j][1], f"{name}_from{j}") for j in sources],
                    name)

    for i, layer in enumerate(spec.layers):
        stage = spec.stage_of(i)
        x = gather(layer.inputs, stage, f"layer_{i}_in")
        conv = _layers.Conv2D(layer.filters, (layer.filter_height, layer.filter_width),
                              strides=_strides(layer), padding="same", use_bias=False,
                              name=f"layer_{i}_conv")
        bn = _layers.BatchNormalization(momentum=body.momentum, epsilon=body.epsilon,
                                        name=f"layer_{i}_bn")
        x = _layers.ReLU(name=f"layer_{i}_relu")(bn(conv(x)))
        pairs.append((conv, bn))
        outs.append((x, stage))
    final = gather(spec.unused_outputs(), spec.stage_of(spec.num_layers - 1), "classifier_in")
    return final, pairs


def portable_model(model: keras.Model, check_on: np.ndarray | None = None,
                   atol: float = 1e-4) -> keras.Model:
    """The child ``model`` rebuilt from built-in Keras layers, with its weights.

    Args:
        model: A built CNN child: ``image -> [Normalization] -> CnnBody ->
            GlobalAveragePooling2D -> Dense`` (as :func:`cnn_space.builder.build_model`
            makes it, optionally wrapped with a ``Normalization`` layer in
            front, as ``nas_tf.export`` does).
        check_on: Images to compare both models on (inference mode); None:
            eight random images.
        atol: Largest absolute difference of the probabilities allowed.

    Returns:
        A functional ``keras.Model`` named ``"<name>_portable"`` of stock
        layers only, computing the same probabilities.

    Raises:
        ValueError: ``model`` holds no :class:`CnnBody` (or several), or the
            rebuilt model differs from it by more than ``atol``.

    Example:

    >>> from cnn_space.builder import build_model
    >>> from cnn_space.space import CnnSpec
    >>> child = build_model(CnnSpec(layers=((3, 3, 4, 1, ()), (1, 1, 5, 2, (0,)))), (8, 8, 3), 4)
    >>> sorted({type(l).__name__ for l in portable_model(child).layers})[:3]
    ['BatchNormalization', 'Conv2D', 'Dense']
    """
    bodies = _find(model, CnnBody)
    if len(bodies) != 1:
        raise ValueError(
            f"portable_model needs a CNN child with one CnnBody. Received: model "
            f"{model.name!r} with {len(bodies)} CnnBody layers")
    body = bodies[0]
    norms = _find(model, _layers.Normalization)
    pools = _find(model, _layers.GlobalAveragePooling2D)
    denses = _find(model, _layers.Dense)
    if len(pools) != 1 or len(denses) != 1:
        raise ValueError(f"portable_model expects one GlobalAveragePooling2D and one Dense "
                         f"classifier. Received: model {model.name!r}")
    input_shape = tuple(model.inputs[0].shape[1:])
    image = keras.Input(input_shape, name="image")
    x = image
    if norms:
        norm = _layers.Normalization.from_config(norms[0].get_config())
        x = norm(x)
        norm.set_weights(norms[0].get_weights())
    features, pairs = _stock_body(body, x)
    pooled = _layers.GlobalAveragePooling2D(name="global_pool")(features)
    dense = _layers.Dense.from_config(denses[0].get_config())
    probs = dense(pooled)
    dense.set_weights(denses[0].get_weights())
    for i, (conv, bn) in enumerate(pairs):
        kernel, gamma, beta, mean, variance = (np.asarray(v) for v in body.layer_variables(i))
        conv.set_weights([kernel])
        bn.set_weights([gamma, beta, mean, variance])
    out = keras.Model(image, probs, name=f"{model.name}_portable")
    if check_on is None:
        rng = np.random.default_rng(0)
        check_on = rng.uniform(0.0, 255.0 if norms else 1.0, size=(8, *input_shape))
    check_on = np.asarray(check_on, np.float32)
    diff = float(np.max(np.abs(np.asarray(model(check_on, training=False))
                               - np.asarray(out(check_on, training=False)))))
    if not diff <= atol:
        raise ValueError(f"The portable model differs from the child by {diff:.3g} "
                         f"(allowed {atol}). Received: model {model.name!r}")
    return out
