"""Export of recurrent-cell children (the ``rnn`` space's exporter).

``nas_tf.export`` finds it through the space's plug-in (:mod:`cells.plugin`):
it rebuilds a found cell as a language model (fresh weights, or retrained on
the full training split and evaluated on test), and also saves the cell alone.
The saved models hold the custom ``TreeCell`` layer, so loading them needs
this project: ``import cells`` (or ``nas_tf.register_layers()``) first.
"""

from __future__ import annotations

from nas_tf.exporters import CELL_FILE, CELL_SPEC_FILE, Retrained, config_from


class RnnExporter:
    """The recurrent-cell space (:mod:`cells`): a language model around the cell.

    The exported model maps tokens ``(batch, time)`` int32 to next-token
    logits ``(batch, time, vocab)``: embedding, the recurrent layers of the
    cell (``keras.layers.RNN(TreeCell)``, zero initial state at each call),
    softmax layer (tied embeddings are written out as a plain dense layer
    with the same values). Test perplexity is measured as in training, with
    the state carried from window to window.
    """

    space_name = "rnn"

    @staticmethod
    def readme_lines(retrain_epochs: int) -> list[str]:
        """What the export's README says of an rnn model and its cell."""
        return [
            "`model` maps tokens (batch, time) int32 to next-token logits. It holds the custom",
            "`TreeCell` layer: loading it needs this project (`import cells` first).", "",
            "The cell alone:",
            "",
            "```python",
            "import json, keras, cells",
            f"c = json.load(open('{CELL_SPEC_FILE}'))",
            "layer = keras.layers.RNN(cells.TreeCell.from_spec(c['spec'], c['units']))",
            f"saved = keras.saving.load_model('{CELL_FILE}')  # "
            + ("with the retrained weights" if retrain_epochs else "fresh weights, as exported"),
            "```",
            "",
        ]

    def child_config(self, recorded, overrides, retrain_epochs):
        from cells.search import RnnSearchConfig

        base = dict((recorded or {}).get("config") or {})
        if retrain_epochs:
            # Retraining uses the whole training split unless overridden.
            base.update(epochs=int(retrain_epochs), steps_per_epoch=None, train_tokens=None,
                        valid_tokens=None)
        return config_from(RnnSearchConfig, base, overrides, "rnn child")

    @staticmethod
    def _corpus(cfg):
        from cells.ptb import load_corpus

        return load_corpus(cfg.dataset, cfg.data_dir, seed=cfg.data_seed, download=cfg.download,
                           train_tokens=cfg.train_tokens, valid_tokens=cfg.valid_tokens)

    @staticmethod
    def functional_model(spec, vocab_size: int, lm_config):
        """The exportable functional language model (fresh weights)."""
        import keras

        from cells.tree_cell import TreeCell

        tokens = keras.Input((None,), dtype="int32", name="tokens")
        x = keras.layers.Embedding(vocab_size, lm_config.units, name="embedding")(tokens)
        for i in range(lm_config.num_layers):
            x = keras.layers.RNN(TreeCell(spec, lm_config.units), return_sequences=True,
                                 name=f"rnn_{i}")(x)
        logits = keras.layers.Dense(vocab_size, name="softmax")(x)
        return keras.Model(tokens, logits, name="rnn_child")

    @staticmethod
    def cell_model(spec, units: int, input_dim: int):
        """The cell alone in an RNN layer: ``(batch, time, input_dim) -> (batch, time, units)``."""
        import keras

        from cells.tree_cell import TreeCell

        x = keras.Input((None, input_dim), name="inputs")
        y = keras.layers.RNN(TreeCell(spec, units), return_sequences=True, name="rnn")(x)
        return keras.Model(x, y, name="tree_cell")

    def _pack(self, spec, lm_model, vocab_size, lm_config) -> Retrained:
        model = self.functional_model(spec, vocab_size, lm_config)
        model.get_layer("embedding").set_weights([lm_model.embedding.embeddings.numpy()])
        for i, rnn in enumerate(lm_model.rnns):
            model.get_layer(f"rnn_{i}").set_weights(rnn.get_weights())
        if lm_model.softmax is None:  # tied: softmax = embedding^T
            emb = lm_model.embedding.embeddings.numpy()
            model.get_layer("softmax").set_weights([emb.T, lm_model.out_bias.numpy()])
        else:
            model.get_layer("softmax").set_weights(lm_model.softmax.get_weights())
        cell = self.cell_model(spec, lm_config.units, lm_config.units)
        cell.get_layer("rnn").set_weights(lm_model.rnns[0].get_weights())
        return Retrained(
            model=model, metrics={}, extras={CELL_FILE: cell},
            extra_json={CELL_SPEC_FILE: {"spec": spec.to_json(), "units": lm_config.units,
                                         "input_dim": lm_config.units}})

    def build(self, space, spec, child_config):
        import numpy as np

        from cells.lm import LanguageModel
        from cells.tree_cell import TreeCell

        cfg = child_config
        lm_config = cfg.lm_config()
        vocab = self._corpus(cfg).vocab_size
        lm = LanguageModel(lambda: TreeCell(spec, lm_config.units), vocab, lm_config)
        lm(np.zeros((1, 1), np.int32), lm.zero_states(1))
        return self._pack(spec, lm, vocab, lm_config)

    def retrain(self, space, spec, child_config, *, seed, test_limit):
        import numpy as np

        from cells.lm import evaluate_perplexity, train_lm
        from cells.tree_cell import TreeCell

        cfg = child_config
        lm_config = cfg.lm_config()
        corpus = self._corpus(cfg)
        units = lm_config.units
        res = train_lm(lambda: TreeCell(spec, units), corpus.train, corpus.valid,
                       corpus.vocab_size, lm_config, seed=seed)
        test = corpus.test[:test_limit] if test_limit else corpus.test
        test_ppl = evaluate_perplexity(res.model, test, bptt=lm_config.bptt,
                                       batch_size=lm_config.eval_batch_size)
        out = self._pack(spec, res.model, corpus.vocab_size, lm_config)
        # The functional copy must compute what the trained model computes.
        x = np.asarray(corpus.test[: min(len(corpus.test), 2 * lm_config.bptt)],
                       np.int32).reshape(1, -1)
        ref, _ = res.model(x, res.model.zero_states(1), training=False)
        got = out.model(x, training=False)
        diff = float(np.max(np.abs(np.asarray(ref) - np.asarray(got))))
        if not diff < 1e-3:
            raise RuntimeError(f"The exported rnn model differs from the trained one by {diff}.")
        out.metrics = {
            "test_perplexity": test_ppl,
            "val_perplexity": res.val_perplexity,
            "train_perplexity": res.train_perplexity,
            "params": res.params,
            "train_seconds": res.train_seconds,
            "steps": res.steps,
            "epochs": len(res.history),
            "train_tokens": len(corpus.train),
            "test_tokens": len(test),
            "dataset": cfg.dataset,
        }
        return out
