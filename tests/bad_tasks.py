"""Tasks whose data is wrong in one way each, for the hostile-input tests."""

from __future__ import annotations

from harness.protocol import Item
from harness.task import DatasetRef, TaskData, TaskSpec


def _spec(name: str, loader: str, kind: str = "corpus", metric: str = "ndcg_at_10") -> TaskSpec:
    return TaskSpec(
        name=name,
        benchmark="bad",
        kind=kind,
        main_metric=metric,
        dataset=DatasetRef(f"local/{name}"),
        loader=loader if ":" in loader else f"bad_tasks:{loader}",
    )


def empty_corpus(spec, data_dir):
    return TaskData([Item("q", "a query")], [], {"q": {"d": 1}})


def no_qrels(spec, data_dir):
    return TaskData([Item("q", "a query")], [Item("d", "a page")], {})


def mismatched_ids(spec, data_dir):
    return TaskData([Item("q", "a query")], [Item("d", "a page")], {"q": {"doc-1": 1}})


def raises(spec, data_dir):
    return {"q": 1}["missing key"]


def float_gain(spec, data_dir):
    return TaskData([Item("q", "a query")], [Item("d", "a page")], {"q": {"d": float("nan")}})


def no_content(spec, data_dir):
    return TaskData([Item("q", "a query")], [Item("d", "")], {"q": {"d": 1}})


def lone_surrogate(spec, data_dir):
    return TaskData([Item("q", "a \ud800 query")], [Item("d", "a page")], {"q": {"d": 1}})


def stranger_group(spec, data_dir):
    return TaskData(
        [Item("q", "a query")],
        [Item("d", "a page")],
        {"q": {"d": 1}},
        query_groups={"english": ["q", "nobody"]},
    )


def positive_not_first(spec, data_dir):
    return TaskData(
        [Item("q", "a query")],
        [Item("c1", "one"), Item("c2", "two")],
        {"q": {"c2": 1}},
        candidate_lists={"q": ["c1", "c2"]},
    )


EMPTY_CORPUS = _spec("empty-corpus", "empty_corpus")
FLOAT_GAIN = _spec("float-gain", "float_gain")
NO_CONTENT = _spec("no-content", "no_content")
LONE_SURROGATE = _spec("lone-surrogate", "lone_surrogate")
STRANGER_GROUP = _spec("stranger-group", "stranger_group")
POSITIVE_NOT_FIRST = _spec(
    "positive-not-first", "positive_not_first", "candidates", "precision_at_1"
)
UNIMPORTABLE = _spec("unimportable", "nomodule:nofunction")
# two names that give one result file
CLASH = [_spec("a/b", "no_qrels"), _spec("a:b", "no_qrels")]
NO_QRELS = _spec("no-qrels", "no_qrels")
MISMATCHED = _spec("mismatched-ids", "mismatched_ids")
RAISES = _spec("raises", "raises")
