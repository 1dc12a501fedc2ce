"""Choosing the child an export rebuilds: a spec file (``--spec``) or a rank (``--rank``).

Part of :mod:`nas_tf.export` (which re-exports both functions); no TensorFlow here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nas_tf.errors import ConfigError, InvalidArchitectureError


def read_spec_file(path_or_json: str, space) -> tuple[Any, dict]:
    """Reads a spec from a file (or JSON text): an exported ``spec.json`` or a bare spec.

    Returns:
        ``(spec, wrapper)`` where ``wrapper`` is the file's JSON object.

    Raises:
        InvalidArchitectureError: unreadable JSON, a spec of another space,
            or a spec the space rejects (the space's message is kept).
    """
    text = path_or_json
    where = "--spec"
    if not path_or_json.lstrip().startswith(("{", "[")):
        if not os.path.isfile(path_or_json):
            raise InvalidArchitectureError(
                f"--spec must be a JSON file or JSON text; no such file. Received: "
                f"spec={path_or_json!r}")
        where = path_or_json
        try:
            text = Path(path_or_json).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidArchitectureError(
                f"--spec {path_or_json} cannot be read as JSON text ({type(e).__name__}: "
                f"{str(e)[:120]}). Pass a spec.json written by export, or JSON text.") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArchitectureError(f"{where} is not valid JSON ({e}).") from None
    except RecursionError:
        raise InvalidArchitectureError(
            f"{where} is nested too deeply to be a spec (thousands of levels). Pass a spec.json "
            "written by export, or JSON text.") from None
    wrapper = obj if isinstance(obj, dict) and "spec" in obj else {"spec": obj}
    other = wrapper.get("space")
    other_name = other.get("name") if isinstance(other, dict) else other
    if other_name is not None and other_name != space.name:
        raise InvalidArchitectureError(
            f"{where} holds a spec of space {other_name!r} but the run searched space "
            f"{space.name!r}. Pass a spec of the run's space. Received: space={other_name!r}")
    try:
        spec = space.spec_from_json(wrapper["spec"])
    except InvalidArchitectureError as e:
        raise InvalidArchitectureError(
            f"{where} is not a valid spec of space {space.name!r}: {e}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise InvalidArchitectureError(
            f"{where} is not a valid spec of space {space.name!r}: {type(e).__name__}: {e}"
        ) from None
    return spec, wrapper


def choose_trial(store, rank: int):
    """The rank-th best done child (1 = best).

    Raises:
        ConfigError: rank < 1 or beyond the number of done children.
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"--rank must be an integer >= 1 (1 = best). Received: rank={rank!r}")
    best = store.best(rank)
    if len(best) < rank:
        done = len(best)
        raise ConfigError(
            f"--rank={rank} is beyond the {done} finished (done) children of this run; pass "
            f"--rank between 1 and {done}." if done else
            f"This run has no finished (done) children yet, so there is no rank {rank}; "
            "wait for the search to train some.")
    return best[rank - 1]
