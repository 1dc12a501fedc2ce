"""Weight sharing settings (``--sharing``), the same for every space that supplies it.

Without sharing (``none``, the paper's method: Zoph & Le 2017,
arXiv:1611.01578, §3) each child is trained from scratch. With ``enas``
(Pham et al. 2018, arXiv:1802.03268) a space supplies one shared model whose
sub-models are all the architectures of the space; a proposed architecture is
scored with the shared weights on a few validation batches (its reward), then
the shared weights train a few batches on it. So between two controller
updates the shared weights train on the m architectures the controller has
just sampled, and each reward is computed with weights trained on earlier
samples of the policy (never on the architecture itself, which would favour
whatever was sampled last): ENAS's alternation of shared-weight and controller
phases at the granularity of one architecture.

This module imports no TensorFlow; a space's evaluator reads the settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from pathlib import Path

from nas_tf.errors import ConfigError, RunDirError
from nas_tf.rundir import write_json_atomic
from nas_tf.validation import check_int, check_positive

#: ``none``: every child trains from scratch; ``enas``: one shared model.
SHARING_MODES = ("none", "enas")


@dataclasses.dataclass(frozen=True)
class SharingConfig:
    """How architectures are scored with shared weights.

    Attributes:
        mode: One of :data:`SHARING_MODES`.
        steps_per_child: Shared-weight training batches (windows for a
            language model) run on each scored architecture, after its score.
            ENAS (§3.2 of Pham et al.) trains the shared weights ~0.2 batches
            per architecture the controller scores; 1 keeps the shared model
            learning at the pace of the search. A fraction trains that many
            batches per architecture on average: 0.2 is one batch after
            every fifth (see :meth:`train_steps`).
        score_windows: Validation batches of a reward (ENAS: one batch). The
            same batches for every architecture, so rewards are comparable.
        top_k: At the end of a search, the ``top_k`` best-scoring
            architectures are scored again on the whole validation split and
            ranked (``ranking.json`` in the run directory).

    Raises:
        ConfigError: an unknown mode or a setting < 1.
    """

    mode: str = "none"
    steps_per_child: float = 1
    score_windows: int = 2
    top_k: int = 10

    def __post_init__(self):
        if self.mode not in SHARING_MODES:
            raise ConfigError(f"sharing must be one of {list(SHARING_MODES)}. "
                              f"Received: sharing={self.mode!r}")
        steps = self.steps_per_child
        if isinstance(steps, bool) or not isinstance(steps, numbers.Real):
            raise ConfigError(f"shared_steps_per_child must be a number > 0. "
                              f"Received: shared_steps_per_child={steps!r}")
        check_positive("shared_steps_per_child", steps)
        if float(steps).is_integer():  # 2.0 from a float flag is the 2 of the API (identity)
            object.__setattr__(self, "steps_per_child", int(steps))
        for name in ("score_windows", "top_k"):
            check_int(f"shared_{name}", getattr(self, name))

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def train_steps(self, index: int) -> int:
        """Shared training batches after the ``index``-th scored architecture.

        ``floor((index + 1) * s) - floor(index * s)`` for ``s =
        steps_per_child``: exactly ``s`` for an integer, and ``s`` on average
        for a fraction, e.g. 0.25 trains one batch after architectures 3, 7,
        11, ... The count depends only on ``index`` (a trial's id), so a
        resumed search keeps the schedule.

        Example:

        >>> [SharingConfig("enas", steps_per_child=0.5).train_steps(i) for i in range(4)]
        [0, 1, 0, 1]
        """
        s = self.steps_per_child
        return int(math.floor((index + 1) * s + 1e-9) - math.floor(index * s + 1e-9))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict | None) -> SharingConfig:
        """The config of a JSON dict (None: no sharing).

        Raises:
            ConfigError: unknown keys or bad values.
        """
        if obj is None:
            return cls()
        unknown = sorted(set(obj) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"Unknown sharing setting(s) {unknown}. Received: {obj!r}")
        return cls(**obj)


def sharing_config(value) -> SharingConfig:
    """A SharingConfig from itself, its mode (``"enas"``) or its JSON form (a search
    config's ``sharing`` field as given, or as a run directory recorded it).

    Raises:
        ConfigError: anything else, or a bad mode or setting.
    """
    if isinstance(value, SharingConfig):
        return value
    if isinstance(value, str):
        return SharingConfig(mode=value)
    if isinstance(value, dict):
        return SharingConfig.from_json(value)
    raise ConfigError(f"sharing must be a mode ('none', 'enas'), a dict or a SharingConfig. "
                      f"Received: sharing={value!r}")


#: Files of a sharing search in ``RUN_DIR/shared/`` (besides the space's model file).
#: Scores are JSON lines, one ``{"spec": ..., "score": ...}`` appended per
#: architecture (constant work per architecture however long the search).
SCORES_FILE = "scores.jsonl"
LEGACY_SCORES_FILE = "scores.json"  # one dict rewritten per architecture (before 2026-11-30)
RANKING_FILE = "ranking.json"


def attach_evaluator(evaluator, inline: bool, executor_name: str, run_dir: Path) -> None:
    """Gives an evaluator with state of its own (the shared weights of
    ``--sharing``) its folder ``RUN_DIR/shared``; such an evaluator must run in
    the searching process (``inline``: the loop's executor is the inline one).

    Raises:
        ConfigError: a shared-weights evaluator with another executor.
    """
    if getattr(evaluator, "in_process_only", False) and not inline:
        raise ConfigError("Weight sharing keeps the shared model in the searching process: use "
                          f"--executor=inline. Received: executor={executor_name}")
    bind = getattr(evaluator, "bind_run_dir", None)
    if callable(bind):
        bind(Path(run_dir) / "shared")


def read_scores(folder: Path) -> dict[str, float]:
    """The scores kept in ``folder`` (spec JSON, sorted keys -> score).

    Reads ``scores.jsonl``; a last line cut short by a killed search is
    dropped and cut from the file, so the next append starts on a fresh line;
    any other unreadable line is skipped (the lines around it are kept).
    A run directory from before the JSON-lines file is read from ``scores.json``.

    Raises:
        RunDirError: ``scores.json`` is not a JSON object of numbers.
    """
    scores = read_legacy_scores(folder)
    path = folder / SCORES_FILE
    if not path.exists():
        return scores
    data = path.read_bytes()
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # the last line, cut short
        parsed = _score_line(line)
        if parsed is not None:
            scores[parsed[0]] = parsed[1]
    whole = data.rfind(b"\n") + 1  # bytes of whole lines
    if whole < len(data):
        with path.open("r+b") as f:
            f.truncate(whole)
    return scores


def _score_line(line: bytes) -> tuple[str, float] | None:
    try:
        row = json.loads(line)
        return json.dumps(row["spec"], sort_keys=True), float(row["score"])
    except (ValueError, KeyError, TypeError):
        return None


def read_legacy_scores(folder: Path) -> dict[str, float]:
    """``scores.json`` of a run directory from before ``scores.jsonl`` ({} when absent).

    Raises:
        RunDirError: it is not a JSON object of numbers.
    """
    legacy = folder / LEGACY_SCORES_FILE
    if not legacy.exists():
        return {}
    try:
        obj = json.loads(legacy.read_text(encoding="utf-8"))
        if not isinstance(obj, dict):
            raise ValueError(f"a JSON {type(obj).__name__}, not an object")
        return {str(k): float(v) for k, v in obj.items()}
    except (OSError, ValueError, TypeError) as e:
        raise RunDirError(
            f"{legacy} is damaged ({str(e)[:120]}): put back a good copy, or delete it (the "
            "final ranking then leaves out the architectures it scored).") from None


def check_shared_folder(folder: Path, model_file: str, finished: int) -> None:
    """Refuses shared-weights state that cannot be resumed, before any child
    is scored (a damaged file would otherwise fail every child).

    Args:
        folder: ``RUN_DIR/shared``.
        model_file: The shared model's file name in it.
        finished: Children the trial store holds finished.

    Raises:
        RunDirError: ``folder`` or a file in it is not what the search wrote
            (not a directory, a damaged model or legacy scores file), or the
            model or the scores are missing while the other is there.
    """
    if not folder.exists():
        return
    if not folder.is_dir():
        raise RunDirError(f"{folder} is not a directory (the shared weights of --sharing live "
                          "there): move it away, and put the run's shared/ folder back.")
    model, scores = folder / model_file, folder / SCORES_FILE
    for path in (model, scores, folder / LEGACY_SCORES_FILE):
        if path.exists() and not path.is_file():
            raise RunDirError(f"{path} is not a file: move it away and put the run's file back.")
    read_legacy_scores(folder)
    if model.exists() and model.suffix == ".npz":
        from nas_tf.shared_model import check_state_file

        try:
            check_state_file(model)
        except ValueError as e:
            raise RunDirError(
                f"{model} is damaged ({e}): put back a good copy, or delete it and "
                f"{scores.name} to restart the shared weights (the {finished} children "
                "recorded keep their rewards).") from None
    has_scores = scores.exists() and scores.stat().st_size > 0
    if has_scores and not model.exists():
        raise RunDirError(
            f"{model} is missing but {scores.name} holds scores of this run: put it back, or "
            f"delete {scores.name} too to restart the shared weights on purpose.")
    if model.exists() and not scores.exists() and finished:
        raise RunDirError(
            f"{scores} is missing but {model.name} holds the shared weights of {finished} "
            f"children: put it back (the final ranking reads it), or delete {model.name} too "
            "to restart the shared weights on purpose.")


class SharedScoring:
    """The part of a space's ``--sharing=enas`` evaluator that names no space.

    A space's evaluator mixes this in beside its own evaluator class and
    supplies :meth:`_build_shared` (its shared model, which has ``steps``,
    ``skipped``, ``save(path)`` and ``restore(path)``), ``model_file`` and
    ``rank()``. This keeps the shared model and every score in the run
    directory's ``shared/`` folder (written after each architecture, so a
    killed search resumes with its shared weights), the shared model's
    TensorBoard scalars, and the final ranking. No TensorFlow here.
    """

    in_process_only = True  # the shared weights live in the searching process
    model_file = "shared.npz"

    def _init_sharing(self, sharing: SharingConfig) -> None:
        if not isinstance(sharing, SharingConfig) or not sharing.enabled:
            raise ConfigError(f"{type(self).__name__} needs an enabled SharingConfig. "
                              f"Received: sharing={sharing!r}")
        self.sharing = sharing
        self._folder: Path | None = None
        self.__dict__.update(self._fresh_sharing_state())

    @staticmethod
    def _fresh_sharing_state() -> dict:
        """The fields that live in one process only (the shared model, the
        scores read back from disk, the recent losses), as a new evaluator
        has them; an evaluator sent to another process starts from these."""
        return {"_shared": None, "_scores": {},
                "_recent": [],  # shared training losses since the last scalars()
                "_saved_steps": -1}  # the shared model's training steps when last saved

    @property
    def sharing_mode(self) -> str:
        return self.sharing.mode

    def bind_run_dir(self, folder: str | Path) -> None:
        """Keeps the shared model in ``folder`` (the loop gives ``RUN_DIR/shared``)."""
        self._folder = Path(folder)

    def _build_shared(self):
        raise NotImplementedError

    def check_run_files(self, finished: int) -> None:
        """Refuses a ``shared/`` folder a resume cannot use (see
        :func:`check_shared_folder`); the loop calls it before any child."""
        if self._folder is not None:
            check_shared_folder(self._folder, self.model_file, finished)

    def shared_model(self):
        """The shared model: built on first use, restored from the run directory
        (with the scores so far) when it holds one."""
        if self._shared is None:
            model = self._build_shared()
            if self._folder is not None and (self._folder / self.model_file).exists():
                model.restore(self._folder / self.model_file)
                self._saved_steps = model.steps
                self._scores = read_scores(self._folder)
            self._shared = model
        return self._shared

    def _record(self, spec, value: float, loss: float | None, metrics: dict) -> None:
        """Keeps ``spec``'s score, saves the model and the scores, and adds the
        shared training loss (None: no training this time) to ``metrics``."""
        self._scores[json.dumps(spec.to_json(), sort_keys=True)] = value
        if self._folder is not None:
            self._folder.mkdir(parents=True, exist_ok=True)
            if self._shared.steps != self._saved_steps:  # unchanged weights: no rewrite
                self._shared.save(self._folder / self.model_file)
                self._saved_steps = self._shared.steps
            line = json.dumps({"spec": spec.to_json(), "score": value}, sort_keys=True)
            with (self._folder / SCORES_FILE).open("a") as f:
                f.write(line + "\n")
        if loss is not None:  # trained this time (see SharingConfig.train_steps)
            metrics["shared_train_loss"] = loss
            if math.isfinite(loss):
                self._recent.append(loss)

    def scalars(self) -> dict[str, float]:
        """The shared model's TensorBoard scalars at a controller update:
        ``shared/train_loss`` (mean training loss since the last update),
        ``shared/steps`` and ``shared/skipped_steps`` (non-finite steps left out)."""
        if self._shared is None:
            return {}
        out = {"shared/steps": float(self._shared.steps),
               "shared/skipped_steps": float(self._shared.skipped)}
        if self._recent:
            out["shared/train_loss"] = sum(self._recent) / len(self._recent)
            self._recent = []
        return out

    def _write_ranking(self) -> None:
        """Writes ``ranking.json`` (``self.rank()``) when the search scored any
        architecture."""
        if self._shared is not None and self._scores and self._folder is not None:
            write_json_atomic(self._folder / RANKING_FILE, self.rank(), indent=1)
