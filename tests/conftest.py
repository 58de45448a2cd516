"""Shared fixtures: tiny randomly initialised model directories in the hub layout (built once)."""

from __future__ import annotations

import pytest

# Whole files of subprocess runs, training and browser tests; single slow tests elsewhere carry
# @pytest.mark.slow. `pytest -m "not slow"` is the quick loop (about a minute on 2 cores); the
# README's test command runs everything.
SLOW_FILES = {
    "test_cli",
    "test_hostile",
    "test_faults",
    "test_training",
    "test_libdocs",
    "test_html",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.module.__name__ in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    import model_fixtures

    return model_fixtures.build_all(tmp_path_factory.mktemp("tiny-models"))
