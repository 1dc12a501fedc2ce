"""Export of CNN children (the ``cnn`` space's exporter).

``nas_tf.export`` finds it through the space's plug-in (:mod:`cnn_space.plugin`).
The exported model is made of built-in Keras layers only
(:func:`cnn_space.portable.portable_model`), so it loads where nas_tf is not
installed, and is also written as a TensorFlow SavedModel.
"""

from __future__ import annotations

import dataclasses

from nas_tf.exporters import MODEL_FILE, SAVED_MODEL_DIR, Retrained, config_from


class CnnExporter:
    """The convolutional space (:mod:`cnn_space`): an image classifier.

    The exported model takes raw images ``(batch, H, W, C)`` in [0, 255]
    (float), normalises them with the training set's per-channel mean and
    standard deviation (a ``keras.layers.Normalization`` layer) and returns
    class probabilities. Retraining uses the training and validation images
    of the search together (the full training set). The model is made of
    built-in Keras layers only (:func:`cnn_space.portable.portable_model`),
    so it loads with plain ``keras.saving.load_model`` where nas_tf is not
    installed, and is also written as a TensorFlow SavedModel for serving.
    """

    space_name = "cnn"

    @staticmethod
    def readme_lines(retrain_epochs: int) -> list[str]:
        """What the export's README says of a cnn model."""
        return ["`model` maps raw images (batch, H, W, C) in [0, 255] to class probabilities.",
                "It is made of built-in Keras layers only: `keras.saving.load_model("
                f"'{MODEL_FILE}')` loads it without nas_tf. `{SAVED_MODEL_DIR}/` is the same "
                "model as a TensorFlow SavedModel for serving "
                f"(`tf.saved_model.load('{SAVED_MODEL_DIR}').serve(images)`).", ""]

    def child_config(self, recorded, overrides, retrain_epochs):
        from cnn_space.train import CnnSearchConfig

        base = dict((recorded or {}).get("config") or {})
        if retrain_epochs:
            base.update(epochs=int(retrain_epochs), steps_per_epoch=None, train_subset=None)
        return config_from(CnnSearchConfig, base, overrides, "cnn child")

    @staticmethod
    def wrap(child, mean, std, image_shape):
        """``raw image -> Normalization(mean, std**2) -> child``."""
        import keras
        import numpy as np

        image = keras.Input(tuple(image_shape), name="image")
        norm = keras.layers.Normalization(mean=np.asarray(mean, np.float32),
                                          variance=np.square(np.asarray(std, np.float32)),
                                          name="normalize")
        return keras.Model(image, child(norm(image)), name="cnn_child_raw")

    def build(self, space, spec, child_config):
        from cnn_space.builder import build_model
        from cnn_space.train import load_data

        # The search's own images, so the model normalises as its children did.
        cfg = child_config
        data = load_data(cfg)
        from cnn_space.portable import portable_model

        child = build_model(spec, data.image_shape, data.num_classes, cfg.weight_decay)
        model = portable_model(self.wrap(child, data.mean, data.std, data.image_shape))
        return Retrained(model=model, metrics={}, saved_model=True)

    def retrain(self, space, spec, child_config, *, seed, test_limit):
        import numpy as np

        from cnn_space.builder import count_flops
        from cnn_space.train import load_data, train_child

        cfg = child_config
        data = load_data(cfg, load_test=True, test_subset=test_limit)
        x = np.concatenate([data.x_train, data.x_val])
        y = np.concatenate([data.y_train, data.y_val])
        pixels = x.reshape(-1, x.shape[-1]).astype(np.float64)
        full = dataclasses.replace(
            data, x_train=x, y_train=y, mean=pixels.mean(axis=0).astype(np.float32),
            std=np.maximum(pixels.std(axis=0), 1.0).astype(np.float32))
        metrics, child = train_child(spec, full, cfg, seed=seed, evaluate_test=True,
                                     return_model=True)
        model = self.wrap(child, full.mean, full.std, full.image_shape)
        raw = data.x_test[:8].astype(np.float32)
        ref = child((raw - full.mean) / full.std, training=False)
        got = model(raw, training=False)
        diff = float(np.max(np.abs(np.asarray(ref) - np.asarray(got))))
        if not diff < 1e-4:
            raise RuntimeError(f"The exported cnn model differs from the trained one by {diff}.")
        from cnn_space.portable import portable_model

        model = portable_model(model, check_on=raw)
        keep = ("test_accuracy", "test_loss", "train_loss_last", "train_accuracy_last", "params",
                "epochs", "steps_per_epoch", "train_seconds")
        out = {k: metrics[k] for k in keep if k in metrics}
        out.update(flops=count_flops(spec, full.image_shape, full.num_classes),
                   train_images=len(y), test_images=len(data.y_test),
                   dataset=cfg.dataset)
        return Retrained(model=model, metrics=out, saved_model=True)
