"""nas_tf's controller for KerasTuner users (an optional extra:
``pip install "nas_tf[keras-tuner]"``).

:class:`ReinforceOracle` (the paper's controller, REINFORCE) and
:class:`RegularizedEvolutionOracle` are ``keras_tuner.Oracle`` subclasses: any
Keras model-building function ``build(hp)`` that KerasTuner can tune becomes
a search space of the controller, one categorical decision per
``hp.Choice`` / ``hp.Int`` / ``hp.Boolean`` / stepped ``hp.Float``
(:mod:`nas_tf.keras_tuner.space`; the oracles: :mod:`nas_tf.keras_tuner.oracle`;
tuners made with them, as ``keras_tuner.RandomSearch`` is: :mod:`nas_tf.keras_tuner.tuners`).

    import keras_tuner
    from nas_tf.keras_tuner import ReinforceOracle

    tuner = keras_tuner.Tuner(
        oracle=ReinforceOracle(keras_tuner.Objective("val_accuracy", "max"),
                               max_trials=20, seed=0),
        hypermodel=build_model, directory="kt", project_name="cnn")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=3)
    best = tuner.get_best_models()[0]
"""

from nas_tf.errors import MissingExtraError

INSTALL_HINT = 'pip install "nas_tf[keras-tuner]"'

try:
    import keras_tuner  # noqa: F401
except ImportError:
    raise MissingExtraError(
        "nas_tf.keras_tuner needs KerasTuner (keras-tuner >= 1.4), which is not installed. "
        f"Install it with: {INSTALL_HINT}") from None

from nas_tf.keras_tuner.oracle import RegularizedEvolutionOracle, ReinforceOracle  # noqa: E402
from nas_tf.keras_tuner.space import MAX_VALUES, decisions_of  # noqa: E402
from nas_tf.keras_tuner.tuners import RegularizedEvolutionSearch, ReinforceSearch  # noqa: E402

__all__ = ["INSTALL_HINT", "MAX_VALUES", "RegularizedEvolutionOracle",
           "RegularizedEvolutionSearch", "ReinforceOracle", "ReinforceSearch", "decisions_of"]
