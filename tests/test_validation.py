"""The shared checks of configuration values (nas_tf.validation)."""

import math

import numpy as np
import pytest

from nas_tf.errors import ConfigError
from nas_tf.validation import check_choice, check_finite, check_int, check_positive, check_rate


@pytest.mark.parametrize("call,message", [
    (lambda: check_positive("lr", 0), "lr must be > 0. Received: lr=0"),
    (lambda: check_positive("gpus", -1, allow_zero=True), "gpus must be >= 0. Received: gpus=-1"),
    (lambda: check_positive("workers", 0, flag=True),
     "--workers must be > 0. Received: workers=0"),
    (lambda: check_positive("lr", math.inf), "lr must be a finite number"),
    (lambda: check_finite("x", math.nan, flag=True), "--x must be a finite number"),
    (lambda: check_finite("x", "3"), "Received: x=3"),
    (lambda: check_int("units", 0), "units must be an integer >= 1. Received: units=0"),
    (lambda: check_int("units", True), "Received: units=True"),
    (lambda: check_int("units", 2.0), "Received: units=2.0"),
    (lambda: check_int("extra", -1, minimum=0), "extra must be an integer >= 0"),
    (lambda: check_rate("dropout", 1.0), r"dropout must be in \[0, 1\). Received: dropout=1.0"),
    (lambda: check_rate("dropout", "x"), "Received: dropout='x'"),
    (lambda: check_choice("algorithm", "grid", ("a", "b")),
     "Unknown algorithm; use one of a, b. Received: algorithm='grid'"),
])
def test_refusals_name_the_value(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_accepted_values_pass_and_convert():
    check_positive("x", None)
    check_positive("x", 0, allow_zero=True)
    check_positive("x", np.float32(0.5))
    assert check_int("units", np.int64(3)) == 3 and type(check_int("units", 3)) is int
    assert check_rate("dropout", 0) == 0.0
    check_choice("algorithm", "a", ("a", "b"))


def test_the_old_homes_use_it():
    """One implementation: the helpers the packages had are this module's."""
    from cells.tree_cell import check_units
    from nas_tf import config, validation

    assert config.check_positive is validation.check_positive
    with pytest.raises(ConfigError, match="num_proj must be an integer >= 1"):
        check_units(0, "num_proj")
