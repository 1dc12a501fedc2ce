"""Which command-line flags have no effect with the others given (for warnings).

Pure functions of flag names and values (the CLI passes them in); no flag is
read here.
"""

from __future__ import annotations

_RNN_ONLY = ("cell_base", "child_units", "child_layers", "bptt", "child_optimizer",
             "child_learning_rate", "child_dropout", "child_grad_clip", "tie_embeddings",
             "reward_c", "train_tokens", "valid_tokens")
_CNN_ONLY = ("cnn_preset", "cnn_num_layers", "cnn_width_multiplier", "cnn_curriculum",
             "cnn_curriculum_every", "cnn_train_subset", "cnn_image_size", "cnn_download",
             "cnn_learning_rate", "cnn_lr_schedule", "cnn_weight_decay", "cnn_reward_last_k",
             "cnn_reward_power", "cnn_jit_compile")
_TRAINED = ("dataset", "data_dir", "child_epochs", "child_steps", "child_batch_size")
_WORKERS = ("num_workers", "gpus_per_child", "cpus_per_child")
_REINFORCE = ("controller_preset", "learning_rate", "baseline_decay", "entropy_weight",
              "max_grad_norm", "temperature", "tanh_constant")
_EVOLUTION = ("population_size", "tournament_size")


def irrelevant_flags(given: set[str], space: str, executor: str, algorithm: str) -> list[str]:
    """One warning line per flag in ``given`` that the other settings ignore.

    Example:

    >>> irrelevant_flags({"num_workers"}, "nb201", "inline", "reinforce")
    ['warning: --num_workers has no effect with --executor=inline (ignored).']
    """
    ignored: dict[str, str] = {}
    for name in given:
        if name in _WORKERS and executor == "inline":
            ignored[name] = "--executor=inline"
        elif name == "ray_address" and executor != "ray":
            ignored[name] = f"--executor={executor}"
        elif name in _TRAINED and space == "nb201":
            ignored[name] = "--space=nb201 (a table look-up trains nothing)"
        elif name in _RNN_ONLY and space != "rnn":
            ignored[name] = f"--space={space}"
        elif name in _CNN_ONLY and space != "cnn":
            ignored[name] = f"--space={space}"
        elif name == "nb201_table" and space != "nb201":
            ignored[name] = f"--space={space}"
        elif name in _REINFORCE and algorithm not in ("reinforce",):
            ignored[name] = f"--algorithm={algorithm}"
        elif name in _EVOLUTION and algorithm != "evolution":
            ignored[name] = f"--algorithm={algorithm}"
    return [f"warning: --{n} has no effect with {why} (ignored)." for n, why in
            sorted(ignored.items())]
