"""The examples in the public scoring and metric functions' docstrings run and hold."""

from __future__ import annotations

import doctest

import pytest

import harness.metrics
import harness.scoring


@pytest.mark.parametrize("module", [harness.scoring, harness.metrics])
def test_docstring_examples_hold(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0
