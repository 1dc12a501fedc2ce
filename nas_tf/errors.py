"""Error types of nas_tf.

Every error a user can cause (a bad flag, a missing data file, a run directory
from another search, an architecture that cannot be built) is raised as a
subclass of :class:`NasTfError` with one sentence that names the problem and
the fix. The CLI prints that sentence alone and exits non-zero.
"""


class NasTfError(Exception):
    """Base class of the errors nas_tf reports to users as one line."""


class ConfigError(NasTfError, ValueError):
    """A configuration value (flag, argument) is invalid."""


class DataError(NasTfError):
    """A data file or directory is missing or malformed."""


class InvalidArchitectureError(NasTfError, ValueError):
    """A spec does not describe a valid architecture of its space."""


class ChildTrainingError(RuntimeError):
    """A child's training diverged (its loss became NaN or infinite).

    Not a :class:`NasTfError`: it is the architecture's failure, recorded with
    the child (reward ``failure_reward``), and the search goes on. Every space
    raises this one type for that condition.
    """


class RunDirError(NasTfError):
    """A run directory cannot be used (other space or config, not a run, ...)."""


class MissingExtraError(NasTfError, ImportError):
    """An optional extra (a package nas_tf does not require) is not installed;
    the message names the ``pip install "nas_tf[...]"`` that adds it."""
