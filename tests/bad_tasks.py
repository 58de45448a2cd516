"""Tasks whose data is wrong in one way each, for the hostile-input tests."""

from __future__ import annotations

from harness.protocol import Item
from harness.task import DatasetRef, TaskData, TaskSpec


def _spec(name: str, loader: str) -> TaskSpec:
    return TaskSpec(
        name=name,
        benchmark="bad",
        kind="corpus",
        main_metric="ndcg_at_10",
        dataset=DatasetRef(f"local/{name}"),
        loader=f"bad_tasks:{loader}",
    )


def empty_corpus(spec, data_dir):
    return TaskData([Item("q", "a query")], [], {"q": {"d": 1}})


def no_qrels(spec, data_dir):
    return TaskData([Item("q", "a query")], [Item("d", "a page")], {})


def mismatched_ids(spec, data_dir):
    return TaskData([Item("q", "a query")], [Item("d", "a page")], {"q": {"doc-1": 1}})


def raises(spec, data_dir):
    return {"q": 1}["missing key"]


EMPTY_CORPUS = _spec("empty-corpus", "empty_corpus")
NO_QRELS = _spec("no-qrels", "no_qrels")
MISMATCHED = _spec("mismatched-ids", "mismatched_ids")
RAISES = _spec("raises", "raises")
