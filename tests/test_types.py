"""Budgets, items and MultiVectors."""

from __future__ import annotations

import pytest
import torch

from harness.budgets import METAEMBED_BUDGETS, Budget, parse_budgets
from harness.errors import HarnessError, UsageError
from harness.multivectors import MultiVectors, check_embeddings
from harness.protocol import Item


@pytest.mark.parametrize(
    ("text", "query", "candidate", "label"),
    [
        ("16x64", 16, 64, "16x64"),
        ("1x1", 1, 1, "1x1"),
        ("allxall", None, None, "allxall"),
        ("all", None, None, "allxall"),
        ("8xall", 8, None, "8xall"),
        (" 2X4 ", 2, 4, "2x4"),
    ],
)
def test_budget_parses_labels(text, query, candidate, label):
    budget = Budget.parse(text)
    assert (budget.query, budget.candidate, budget.label) == (query, candidate, label)


@pytest.mark.parametrize("text", ["3x", "x4", "0x4", "4x0", "-1x2", "1x2x3", "", "ax1"])
def test_malformed_budgets_are_usage_errors(text):
    with pytest.raises(UsageError):
        Budget.parse(text)


def test_budget_lists_keep_order_drop_repeats_and_all_means_model_defaults():
    assert [b.label for b in parse_budgets("1x1,16x64,1x1")] == ["1x1", "16x64"]
    assert parse_budgets("all") is None and parse_budgets(None) is None
    assert [b.label for b in METAEMBED_BUDGETS] == ["1x1", "2x4", "4x8", "8x16", "16x64"]


def test_item_hash_covers_text_image_bytes_and_instruction(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    assert Item("1", "t", image=a).content_hash == Item("2", "t", image=b).content_hash
    assert Item("1", "t", image=a).content_hash == Item("1", "t", image=b"same").content_hash
    hashes = {
        Item("x", "t").content_hash,
        Item("x", "t", instruction="i").content_hash,
        Item("x", "ti").content_hash,
        Item("x", None, instruction="t").content_hash,
        Item("x", "t", image=b"").content_hash,
    }
    assert len(hashes) == 5


def test_missing_and_corrupt_images_name_item_and_path(tmp_path):
    with pytest.raises(HarnessError, match="page-7.*nope.png"):
        Item("page-7", image=tmp_path / "nope.png").open_image()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(HarnessError, match="p1.*bad.png.*cannot be decoded"):
        Item("p1", image=bad).open_image()


def test_item_opens_images_lazily_as_rgb(tmp_path):
    from PIL import Image

    path = tmp_path / "g.png"
    Image.new("L", (3, 2), 128).save(path)
    img = Item("g", image=str(path)).open_image()
    assert img.mode == "RGB" and img.size == (3, 2)


def test_multivectors_prefix_mask_and_padding():
    mv = MultiVectors.from_list([torch.ones(3, 2), 2 * torch.ones(1, 2)])
    assert mv.vectors.shape == (2, 3, 2) and mv.lengths.tolist() == [3, 1]
    assert mv.vectors[1, 1:].abs().sum() == 0
    assert mv.mask().tolist() == [[True, True, True], [True, False, False]]
    p = mv.prefix(2)
    assert p.vectors.shape == (2, 2, 2) and p.lengths.tolist() == [2, 1]
    joined = MultiVectors.cat([mv, MultiVectors.from_list([torch.ones(5, 2)])])
    assert joined.vectors.shape == (3, 5, 2) and joined.lengths.tolist() == [3, 1, 5]
    with pytest.raises(ValueError):
        MultiVectors(torch.zeros(2, 3, 4), torch.tensor([1, 4]))


def test_nan_and_collapsed_embeddings_are_refused():
    good = MultiVectors(torch.randn(3, 2, 4), torch.tensor([2, 2, 2]))
    check_embeddings(good, ["a", "b", "c"], model="m", role="query")
    nan = good.vectors.clone()
    nan[1, 0, 0] = float("nan")
    with pytest.raises(HarnessError, match="NaN.*'b'"):
        check_embeddings(MultiVectors(nan, good.lengths), ["a", "b", "c"], model="m", role="query")
    same = MultiVectors(torch.ones(3, 2, 4), good.lengths)
    with pytest.raises(HarnessError, match="identical"):
        check_embeddings(same, ["a", "b", "c"], model="m", role="candidate")
