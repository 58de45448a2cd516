"""Shared fixtures: tiny randomly initialised model directories in the hub layout (built once)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    import model_fixtures

    return model_fixtures.build_all(tmp_path_factory.mktemp("tiny-models"))
