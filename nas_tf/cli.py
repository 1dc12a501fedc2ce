"""What the command-line modules share: ``--help``, quiet TensorFlow start-up,
and the split of results (stdout) from progress (stderr).

Only the CLI modules (:mod:`nas_tf.run`, :mod:`nas_tf.report`,
:mod:`nas_tf.export`) call these functions; the library never changes the
environment or the warning filters by itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Sequence

HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull", "--help=true", "--helpfull=true")

#: Lines TensorFlow's C++ runtime prints while it is imported, whatever
#: TF_CPP_MIN_LOG_LEVEL says (absl's pre-init warning, the oneDNN notice, the
#: CPU-feature notice). Only these are dropped; anything else is shown.
_STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]0000 .*(port\.cc|cpu_feature_guard\.cc|cuda_|gpu_device|dso_loader)"
    r"|To enable the following instructions:"
    r"|This TensorFlow binary is optimized)")


def wants_help(argv: Sequence[str]) -> str | None:
    """``"full"`` for --helpfull, ``"short"`` for --help / -h, else None."""
    for a in list(argv)[1:]:
        if a == "--":
            break
        if a in HELP_FLAGS:
            return "full" if a.startswith("--helpfull") else "short"
    return None


def help_text(usage: str, fv, full: bool = False) -> str:
    """``usage`` followed by the flags of ``fv`` with their defaults.

    Args:
        usage: What the command does and an example.
        fv: An ``absl.flags.FlagValues``.
        full: Also list absl's own flags (logging verbosity, ...).
    """
    parts = [usage.strip(), ""]
    by_module = fv.flags_by_module_dict()
    for module in sorted(by_module, key=lambda m: (m.startswith("absl"), m)):
        if module.startswith("absl") and not full:
            continue
        text = fv.module_help(module).strip("\n")
        if text:  # its first line names the module's file; say what the flags are instead
            body = text.split("\n", 1)[1] if "\n" in text else ""
            parts.append(("flags of " + module if module.startswith("absl") else "flags")
                         + ":\n" + body + "\n")
    if not full and any(m.startswith("absl") for m in by_module):
        parts.append("\n--helpfull also lists absl's flags (logging verbosity, ...).")
    return "\n".join(parts) + "\n"


def quiet_tensorflow() -> None:
    """Keeps TensorFlow's start-up and runtime chatter out of the default output.

    Imports TensorFlow within :func:`quiet_startup`. Also hides one Keras
    warning that does not concern a user (``shuffle=True`` with a
    ``tf.data.Dataset``, which the children shuffle themselves).
    """
    with quiet_startup():
        try:
            import tensorflow  # noqa: F401
        except Exception:  # noqa: BLE001 - the import error is raised again where TF is used
            pass


@contextlib.contextmanager
def quiet_startup():
    """Within the block, TensorFlow's start-up notices are dropped if
    something imports it (e.g. a space plug-in defining its flags); any other
    line written to stderr is passed on after the block.

    Unless the user set them, sets ``TF_CPP_MIN_LOG_LEVEL=3`` (hides, e.g., the
    oneDNN "supports DT_INT32 only on platforms with AVX-512" line) before
    TensorFlow is imported. A user who set ``TF_CPP_MIN_LOG_LEVEL`` gets the
    level they set; the start-up notices (informational lines that ignore the
    variable) are dropped unless that level is 0, which asks for every line.
    Nothing is captured once TensorFlow is imported.
    """
    _ignore_keras_shuffle_warning()
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if "tensorflow" in sys.modules or (level is not None and level.strip() in ("", "0")):
        yield
        return
    if level is None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ[QUIET_MARK] = "1"  # local worker processes do the same (nas_tf.executors.worker)
    captured: list[str] = []
    try:
        with _captured_fd2() as captured:
            yield
    finally:
        for line in captured:
            if line and not _STARTUP_NOISE.match(line):
                sys.stderr.write(line + "\n")


#: Set by :func:`quiet_tensorflow`; worker processes started by the search see it.
QUIET_MARK = "NAS_TF_QUIET_STARTUP"


def _ignore_keras_shuffle_warning() -> None:
    warnings.filterwarnings(
        "ignore", message=r"`shuffle=True` was passed, but will be ignored", category=UserWarning)
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _PerChildRetracing) for f in logger.filters):
        logger.addFilter(_PerChildRetracing())


class _PerChildRetracing(logging.Filter):
    """Drops TensorFlow's "N out of the last N calls to ... triggered tf.function
    retracing" warning: every child is a new model with its own functions, so
    one trace per child is expected, not a mistake the user can fix."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow, dropping only its start-up notices from stderr."""
    _ignore_keras_shuffle_warning()
    if "tensorflow" in sys.modules:
        return
    with _captured_fd2() as captured:
        try:
            import tensorflow  # noqa: F401
        except Exception:  # noqa: BLE001 - the import error is raised again where TF is used
            pass
    for line in captured:
        if line and not _STARTUP_NOISE.match(line):
            sys.stderr.write(line + "\n")


@contextlib.contextmanager
def _captured_fd2():
    """Captures what is written to file descriptor 2 (C and Python) into a list of lines."""
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): capture nothing
        yield lines
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())


def result(text: str) -> None:
    """A result line for the user: stdout (progress and logs go to stderr)."""
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()
