"""nas_tf.shared_model: the shared models' weights + optimizer + counters file."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nas_tf.errors import ConfigError
from nas_tf.shared_model import apply_if_finite, restore_state, save_state


def _model_and_optimizer(units, seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])
    opt = keras.optimizers.Adam(1e-2)
    opt.build(model.trainable_variables)
    x = np.ones((4, 3), "float32")
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(model(x) ** 2)
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                            model.trainable_variables))
    return model, opt


def test_round_trip_restores_weights_optimizer_and_counters(tmp_path):
    model, opt = _model_and_optimizer(2, 0)
    save_state(tmp_path / "s.npz", model, opt, [7, 3])
    assert not list(tmp_path.glob("*.tmp*"))  # written through a rename
    other, other_opt = _model_and_optimizer(2, 1)
    assert not np.allclose(other.get_weights()[0], model.get_weights()[0])
    assert restore_state(tmp_path / "s.npz", other, other_opt, "the model", 2) == [7, 3]
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(other_opt.variables, opt.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_old_position_key_is_read(tmp_path):
    model, opt = _model_and_optimizer(2, 0)
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(opt.variables)})
    np.savez(tmp_path / "old.npz", position=np.asarray([5, 9, 1]), **arrays)
    assert restore_state(tmp_path / "old.npz", model, opt, "the shared model", 3) == [5, 9, 1]


def test_a_file_of_another_model_or_no_file_is_one_config_error(tmp_path):
    model, opt = _model_and_optimizer(2, 0)
    save_state(tmp_path / "s.npz", model, opt, [1, 2])
    wider, wider_opt = _model_and_optimizer(5, 0)
    before = [w.copy() for w in wider.get_weights()]
    with pytest.raises(ConfigError, match=r"Cannot restore the wide model from .*s\.npz.*"
                                          r"Delete it to start the shared weights afresh"):
        restore_state(tmp_path / "s.npz", wider, wider_opt, "the wide model", 2)
    for a, b in zip(wider.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="3 counters where 2 were expected|2 counters where 3"):
        restore_state(tmp_path / "s.npz", model, opt, "the model", 3)
    with pytest.raises(ConfigError, match="Cannot restore the model"):
        restore_state(tmp_path / "missing.npz", model, opt, "the model", 2)
    (tmp_path / "cut.npz").write_bytes((tmp_path / "s.npz").read_bytes()[:100])
    with pytest.raises(ConfigError, match="Cannot restore the model"):
        restore_state(tmp_path / "cut.npz", model, opt, "the model", 2)


def test_a_step_is_applied_only_when_finite():
    v = tf.Variable([1.0, -2.0])
    opt = keras.optimizers.SGD(0.5)
    opt.build([v])
    step = tf.function(lambda g, loss: apply_if_finite(opt, [g], [v], loss, clip=1.0))
    assert bool(step(tf.constant([3.0, 4.0]), tf.constant(1.0)))  # norm 5, clipped to 1
    np.testing.assert_allclose(v.numpy(), [1.0 - 0.5 * 0.6, -2.0 - 0.5 * 0.8], rtol=1e-6)
    before = v.numpy().copy()
    assert not bool(step(tf.constant([np.nan, 1.0]), tf.constant(1.0)))
    assert not bool(step(tf.constant([1.0, 1.0]), tf.constant(np.inf)))
    np.testing.assert_array_equal(v.numpy(), before)
