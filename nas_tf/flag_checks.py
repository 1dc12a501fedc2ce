"""Which command-line flags have no effect with the others given (for warnings).

Pure functions of flag names and values (the CLI passes them in); no flag is
read here.
"""

from __future__ import annotations

_TRAINED = ("dataset", "data_dir", "child_epochs", "child_steps", "child_batch_size")
_WORKERS = ("num_workers", "gpus_per_child", "cpus_per_child")
_REINFORCE = ("controller_preset", "learning_rate", "baseline_decay", "entropy_weight",
              "max_grad_norm", "temperature", "tanh_constant")
_EVOLUTION = ("population_size", "tournament_size")
_SHARING = ("shared_steps_per_child", "shared_score_windows", "shared_top_k")


def irrelevant_flags(given: set[str], space: str, executor: str, algorithm: str,
                     space_flags: dict[str, tuple[str, ...]] | None = None,
                     trains_children: bool = True, sharing: str = "none") -> list[str]:
    """One warning line per flag in ``given`` that the other settings ignore.

    Args:
        given: The flags set on the command line.
        space, executor, algorithm: The values of those flags.
        space_flags: Each registered space's own flags (a space's flags do
            nothing for another space).
        trains_children: Whether the space trains children (the shared
            ``--dataset``, ``--child_*`` flags do nothing for a table look-up).
        sharing: ``--sharing`` (the ``--shared_*`` flags need a mode other
            than ``none``).

    Example:

    >>> irrelevant_flags({"num_workers"}, "nb201", "inline", "reinforce")
    ['warning: --num_workers has no effect with --executor=inline (ignored).']
    """
    owner = {f: name for name, names in (space_flags or {}).items() for f in names}
    ignored: dict[str, str] = {}
    for name in given:
        if name in _WORKERS and executor == "inline":
            ignored[name] = "--executor=inline"
        elif name == "ray_address" and executor != "ray":
            ignored[name] = f"--executor={executor}"
        elif name in _TRAINED and not trains_children:
            ignored[name] = f"--space={space} (a table look-up trains nothing)"
        elif owner.get(name, space) != space:
            ignored[name] = f"--space={space}"
        elif name in _REINFORCE and algorithm not in ("reinforce",):
            ignored[name] = f"--algorithm={algorithm}"
        elif name in _EVOLUTION and algorithm != "evolution":
            ignored[name] = f"--algorithm={algorithm}"
        elif name in _SHARING and sharing == "none":
            ignored[name] = "--sharing=none"
    return [f"warning: --{n} has no effect with {why} (ignored)." for n, why in
            sorted(ignored.items())]
