"""Lazy registries: listing imports no torch; names, groups and suggestions."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.errors import HarnessError, UsageError
from harness.options import parse_model_args
from harness.registry import get_model, get_tasks, groups

REQUIRED_GROUPS = {
    "vidore",
    "vidore-v1",
    "vidore-v2",
    "vidore-v3",
    "mmeb",
    "mmeb-classification",
    "mmeb-vqa",
    "mmeb-retrieval",
    "mmeb-grounding",
    "mmeb-ind",
    "mmeb-ood",
    "libdocs",
    "libdocs-quick",
}


@pytest.mark.parametrize("what", ["tasks", "groups", "models"])
def test_listing_imports_neither_torch_nor_transformers(what):
    code = (
        "import sys, harness, harness.cli\n"
        f"rc = harness.cli.main(['list', '{what}'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'pandas') if m in sys.modules]\n"
        "assert rc == 0 and not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_all_groups_exist():
    assert set(groups()) >= REQUIRED_GROUPS


def test_unknown_names_suggest_close_ones():
    with pytest.raises(UsageError, match="did you mean 'test-hash'"):
        get_model("test-hsah")
    with pytest.raises(UsageError, match="did you mean 'vidore-v2'"):
        get_tasks("vidore-v22")


def test_comma_lists_and_module_targets_resolve_in_order():
    specs = get_tasks("toy_tasks:LISTS,toy_tasks:TASKS")
    assert [s.name for s in specs] == ["toy-lists", "toy-corpus"]


def test_model_args_parse_types_and_reach_the_factory():
    args = parse_model_args("dim=8,nested=false,noise=0.25,name=abc,seed=none")
    assert args == {"dim": 8, "nested": False, "noise": 0.25, "name": "abc", "seed": None}
    model = get_model("test-hash", {"dim": 8, "nested": False})
    assert model.card.dim == 8 and model.card.nested is False
    with pytest.raises(UsageError, match="rejected --model-args"):
        get_model("test-hash", {"no_such_arg": 1})
    with pytest.raises(UsageError, match="key=value"):
        parse_model_args("dim")


def test_factory_targets_load_without_registration():
    model = get_model("toy_models:NaNEncoder")
    assert model.card.name == "test-nan"


def broken_factory(dim: int = 8):
    """A factory with a bug inside: its TypeError is not about --model-args."""
    return len(dim)


def test_a_bug_inside_a_factory_is_not_reported_as_rejected_model_args():
    # named in one line as the failure it is (the original chained, for -v), not as bad args
    with pytest.raises(HarnessError, match="could not be built: TypeError: .*has no len") as info:
        get_model("test_registry:broken_factory", {"dim": 3})
    assert not isinstance(info.value, UsageError) and isinstance(info.value.__cause__, TypeError)
    with pytest.raises(UsageError, match="rejected --model-args"):
        get_model("test_registry:broken_factory", {"width": 3})
