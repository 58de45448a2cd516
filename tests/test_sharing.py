"""Encoding what is needed once: items that two tasks share are encoded once per run even
without the disk cache, and nothing is rendered or read that the model will not read."""

from __future__ import annotations

import dataclasses

import pytest

import harness
import harness.tasks.libdocs as libdocs
from harness.errors import HarnessError
from harness.protocol import IMAGE_PLACEHOLDER, Item
from harness.registry import get_tasks
from harness.task import DatasetRef, TaskData, TaskSpec
from harness.testing import HashEncoder


class Counting(HashEncoder):
    """test-hash, counting the items it is asked to encode per role."""

    def __init__(self, modalities=("text", "image"), **kwargs):
        super().__init__(**kwargs)
        self.modalities = modalities
        self.seen: dict[str, list[str]] = {"query": [], "candidate": []}
        self.images = 0

    @property
    def card(self):
        return dataclasses.replace(super().card, modalities=self.modalities)

    def encode(self, items, *, role, **kwargs):
        self.seen[role].extend(item.id for item in items)
        self.images += sum(item.image is not None for item in items)
        return super().encode(items, role=role, **kwargs)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "harness-cache"))


def run(encoder, tmp_path, **options):
    return harness.evaluate(
        encoder,
        get_tasks("libdocs-quick"),
        budgets="1x1",
        output=str(tmp_path / "out"),
        progress=False,
        **options,
    )


@pytest.mark.slow
def test_pages_two_tasks_share_are_encoded_once_without_the_disk_cache(tmp_path):
    encoder = Counting()
    corpus, lists = run(encoder, tmp_path, no_cache=True)
    pages = {c.id for c in get_tasks("libdocs-quick-corpus")[0].load().candidates}
    assert len(pages) == 160
    # every page once over both tasks; queries differ between the tasks, each once
    assert sorted(encoder.seen["candidate"]) == sorted(pages)
    assert len(encoder.seen["query"]) == len(set(encoder.seen["query"])) == 384 + 183
    assert corpus["encode"]["items_from_cache"] == 0
    assert lists["encode"]["items_from_cache"] == 160
    assert not (tmp_path / "harness-cache" / "embeddings").exists()
    # the same scores as with the disk cache
    again = run(Counting(), tmp_path / "cached", cache_dir=str(tmp_path / "cache"))
    for a, b in zip((corpus, lists), again, strict=True):
        assert a["budgets"][0]["per_query"] == b["budgets"][0]["per_query"]


@pytest.mark.slow
def test_a_text_only_model_gets_no_page_images_and_none_are_rendered(tmp_path, monkeypatch):
    rendered = []
    original = libdocs.render_page.__wrapped__

    def counting(title, text):
        rendered.append(title)
        return original(title, text)

    monkeypatch.setattr(libdocs, "render_page", counting)
    text_only = Counting(modalities=("text",))
    run(text_only, tmp_path / "a", no_cache=True)
    assert rendered == [] and text_only.images == 0
    reads_images = Counting()
    run(reads_images, tmp_path / "b", no_cache=True)
    assert len(rendered) == 2 * 160  # each task loads its pages (the render is cached per page)
    assert reads_images.images == 160


def test_libdocs_loads_pages_without_images_for_a_text_only_model():
    spec = get_tasks("libdocs-quick-corpus")[0]
    full = spec.load()
    seen = spec.load(modalities=("text",))
    assert all(c.image is not None for c in full.candidates)
    assert all(c.image is None and c.text for c in seen.candidates)
    assert [c.text for c in seen.candidates] == [c.text for c in full.candidates]


def _shared_text_images(spec, data_dir):
    """Candidates that differ only in their image and share one instruction text, as in MMEB's
    text-to-image subsets."""
    queries, candidates, lists = [], [], {}
    for i in range(12):
        queries.append(Item(f"q{i}", text=f"a photo of thing {i}"))
        ids = [f"c{i}-{j}" for j in range(4)]
        candidates += [
            Item(c, text=f"{IMAGE_PLACEHOLDER}\nRepresent the given image.", image=f"{c}".encode())
            for c in ids
        ]
        lists[f"q{i}"] = ids
    return TaskData(queries, candidates, {q: {ids[0]: 1} for q, ids in lists.items()}, lists)


def test_a_text_only_model_on_items_told_apart_only_by_images_is_refused(tmp_path):
    """Images still tell items apart for a text-only model (they are part of the cache key), so
    such a model embeds distinct candidates alike and the collapse check refuses the run; the
    items are not merged into one and scored as a tie the positive would win."""

    class TextOnly(Counting):
        def encode(self, items, *, role, **kwargs):
            items = [dataclasses.replace(i, image=None) for i in items]  # reads text only
            return super().encode(items, role=role, **kwargs)

    spec = TaskSpec(
        name="shared-text-images",
        benchmark="toy",
        kind="candidates",
        main_metric="precision_at_1",
        dataset=DatasetRef("toy/shared-text-images", revision="r1"),
        loader=_shared_text_images,
        modalities=("text", "image"),
    )
    encoder = TextOnly(modalities=("text",), noise=0.0, query_vectors=1, candidate_vectors=1)
    with pytest.raises(HarnessError, match="identical embeddings"):
        harness.evaluate(encoder, spec, budgets="1x1", output=str(tmp_path), no_cache=True)
    assert len(set(encoder.seen["candidate"])) == 48
