"""Results that travel to and from mteb's results repository.

Export: each (model, task, budget) of our result files becomes one mteb `TaskResult` file in the
repository's layout, `results/<org>__<name>/<revision>/<TaskName>.json` beside a
`model_meta.json`. A model's largest plain budget is its default result; every other budget
(smaller, cascaded, compressed) is an mteb *experiment* of the same model, under
`experiments/budget_<label>/` with `experiment_kwargs = {"budget": label}`, the way mteb stores
one model run with other inference settings. Scores are fractions, one dict per hf_subset
(`default`, or one per query language where mteb scores languages separately), with mteb's
metric names and `main_score`.

Import: the ViDoRe scores of chosen models read from a checkout of mteb's results repository at
a pinned commit, stored with their source (`results/reported/mteb_vidore.json`) and shown as
`(reported, mteb)` rows beside runs of the same tasks.

Neither direction needs the `mteb` package; the tests load the export with mteb's own loader.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.budgets import Budget
from harness.errors import HarnessError
from harness.results import partial_reason, write_json_atomic
from harness.task import TaskSpec

# ISO 639-3 code and script, as mteb writes `languages`, for the languages our specs name.
LANGUAGE_CODES = {
    "en": "eng-Latn",
    "english": "eng-Latn",
    "fr": "fra-Latn",
    "french": "fra-Latn",
    "es": "spa-Latn",
    "spanish": "spa-Latn",
    "de": "deu-Latn",
    "german": "deu-Latn",
    "it": "ita-Latn",
    "italian": "ita-Latn",
    "pt": "por-Latn",
    "portuguese": "por-Latn",
}
SPLIT = "test"
NO_REVISION = "no_revision_available"  # mteb's folder name for a model without a revision
EXPERIMENTS = "experiments"
_INVALID = set('<>:"|?*\\/\0')
_METRIC = re.compile(r"^(ndcg|map|recall|precision|mrr|hit)_at_(\d+)$")
DEFAULT_MODELS = (
    "vidore/colpali-v1.2",
    "vidore/colpali-v1.3",
    "vidore/colqwen2-v1.0",
    "vidore/colqwen2.5-v0.2",
    "vidore/colSmol-256M",
    "vidore/colSmol-500M",
    "nomic-ai/colnomic-embed-multimodal-3b",
    "nomic-ai/colnomic-embed-multimodal-7b",
    "nomic-ai/nomic-embed-multimodal-3b",
    "nomic-ai/nomic-embed-multimodal-7b",
    "jinaai/jina-embeddings-v4",
    "nvidia/llama-nemoretriever-colembed-1b-v1",
    "nvidia/llama-nemoretriever-colembed-3b-v1",
    "voyageai/voyage-multimodal-3",
    "TomoroAI/tomoro-colqwen3-embed-8b",
    "Qwen/Qwen3-VL-Embedding-2B",
    "Qwen/Qwen3-VL-Embedding-8B",
)


def model_folder(name: str) -> str:
    """mteb's folder name for a model: `/` becomes `__`, spaces `_`."""
    return _component(name.replace("/", "__").replace(" ", "_"))


def _component(text: str) -> str:
    """One path component, whatever a result file says: separators and `..` never leave the
    folder they are written under."""
    text = text.replace("/", "__").replace("\\", "__").replace("\0", "_")
    return "_" if text in ("", ".", "..") else text


def experiment_name(kwargs: dict[str, str]) -> str:
    """mteb's folder name for experiment kwargs of string values: `key_value` joined by `__`,
    characters not allowed in file names replaced by `_`."""
    clean = lambda v: "".join("_" if c in _INVALID else c for c in v)  # noqa: E731
    return "__".join(f"{k}_{clean(str(v))}" for k, v in sorted(kwargs.items()))


def mteb_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Our metric names in mteb's vocabulary (`hit_at_k` is mteb's `hit_rate_at_k`, and
    `accuracy` is recall@1); per-group and derived metrics are left out."""
    out = {}
    for name, value in metrics.items():
        match = _METRIC.match(name)
        if match:
            kind, k = match.groups()
            out[f"hit_rate_at_{k}" if kind == "hit" else name] = value
    if "recall_at_1" in metrics:
        out["accuracy"] = metrics["recall_at_1"]
    return out


def _languages(names: Iterable[str]) -> list[str]:
    return [LANGUAGE_CODES.get(n, n) for n in names]


def task_result(record: dict[str, Any], row: dict[str, Any], spec: TaskSpec) -> dict[str, Any]:
    """One budget row of a result record as an mteb TaskResult (a dict of its JSON fields)."""
    main = spec.main_metric
    subsets = []
    if row.get("groups"):
        # mteb scores each language subset on its own; the task score is their mean.
        order = [g for g in spec.languages if g in row["groups"]] or sorted(row["groups"])
        for group in order:
            metrics = mteb_metrics(row["groups"][group])
            subsets.append({**metrics, "main_score": metrics[main], "hf_subset": group,
                            "languages": _languages([group])})  # fmt: skip
    else:
        metrics = mteb_metrics(row["metrics"])
        subsets.append({**metrics, "main_score": row["main_score"], "hf_subset": "default",
                        "languages": _languages(spec.languages or ("en",))})  # fmt: skip
    encode = record.get("encode") or {}
    seconds = [encode.get("queries_seconds"), encode.get("candidates_seconds")]
    created = record.get("created_at")
    return {
        "dataset_revision": record["task"]["dataset"].get("revision") or spec.dataset.revision,
        "task_name": spec.mteb_name,
        "mteb_version": None,  # not produced by mteb
        "scores": {SPLIT: subsets},
        "evaluation_time": sum(s for s in seconds if isinstance(s, int | float)) or None,
        "kg_co2_emissions": None,
        "date": datetime.fromisoformat(created).timestamp() if created else None,
    }


def model_meta(record: dict[str, Any], label: str, experiment: bool) -> dict[str, Any]:
    """`name` and `revision` are what mteb's loader needs; an experiment also carries its
    `experiment_kwargs`, from which mteb derives the experiment's name."""
    model = record["model"]
    parsed = Budget.parse(label)
    single = isinstance(parsed, Budget) and parsed.sides.label == "1x1"
    meta = {
        "name": model["name"],
        "revision": model.get("revision") or NO_REVISION,
        "n_parameters": model.get("n_params") or model.get("backbone_params"),
        "embed_dim": model.get("dim"),
        # what the harness computes: a dot product of one vector a side, else MaxSim
        "similarity_fn_name": "dot" if single else "max_sim",
        "framework": ["metaembed-harness"],
    }
    if experiment:
        meta["experiment_kwargs"] = {"budget": label}
    return meta


def default_budget(labels: Sequence[str]) -> str:
    """A model's default result: its largest plain budget (else its first)."""
    plain = [b for b in map(Budget.parse, labels) if isinstance(b, Budget) and not b.storage]
    return max(plain, key=Budget.sort_key).label if plain else labels[0]


@dataclass
class Exported:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)


def export_mteb(
    records: list[dict[str, Any]],
    specs: dict[str, TaskSpec],
    out: str | Path,
    allow_partial: bool = False,
) -> Exported:
    """Write `records` in mteb's results layout under `out/results/`; tasks mteb does not have
    and partial runs (unless `allow_partial`) are skipped and named."""
    done = Exported()
    planned: dict[Path, tuple[dict[str, Any], dict[str, Any], TaskSpec, str | None]] = {}
    # One default per model and revision, over all its tasks: the folder's results and its
    # model_meta.json then describe one configuration.
    labels: dict[tuple[str, str], list[str]] = {}
    for record in records:
        key = (record["model"]["name"], record["model"].get("revision") or NO_REVISION)
        labels.setdefault(key, []).extend(row["label"] for row in record["budgets"])
    defaults = {key: default_budget(found) for key, found in labels.items()}
    for record in records:
        what = f"{record['model']['name']} / {record['task']['name']}"
        spec = specs.get(record["task"]["name"])
        if spec is None or spec.mteb_name is None:
            done.skipped.append((what, "mteb has no such task"))
            continue
        why = partial_reason(record)
        if why and not allow_partial:
            done.skipped.append((what, f"partial ({why}); --allow-partial exports it anyway"))
            continue
        default = defaults[
            (record["model"]["name"], record["model"].get("revision") or NO_REVISION)
        ]
        folder = Path(out) / "results" / model_folder(record["model"]["name"])
        folder = folder / _component(str(record["model"].get("revision") or NO_REVISION))
        for row in record["budgets"]:
            budget = None if row["label"] == default else row["label"]
            where = folder
            if budget is not None:
                where = folder / EXPERIMENTS / experiment_name({"budget": budget})
            path = where / f"{spec.mteb_name}.json"
            if path in planned:
                raise HarnessError(
                    f"two results for {what} at budget {row['label']} under the results given; "
                    f"export one results folder at a time"
                )
            planned[path] = (record, row, spec, budget)
    for path, (record, row, spec, budget) in sorted(planned.items()):
        write_json_atomic(path, task_result(record, row, spec))
        meta = path.parent / "model_meta.json"
        write_json_atomic(meta, model_meta(record, row["label"], budget is not None))
        done.written.append(path)
    return done


# ---------------------------------------------------------------- import


def _read_json(path: Path) -> dict[str, Any]:
    """mteb writes bare NaN for undefined metrics; Python's json reads them. A file that is not
    JSON is named with its line."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}:{exc.lineno} is not valid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"cannot read {path}: {exc}") from None


def _subset_main(subset: dict[str, Any]) -> float | None:
    value = subset.get("main_score")
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def read_task_file(path: Path, spec: TaskSpec) -> dict[str, Any] | None:
    """One published TaskResult as a reported entry: the task score (mteb's: the mean of
    `main_score` over the subsets, x100), each subset's score, and where it came from; None
    when the file's subsets are not the ones mteb scores for this task (an incomplete file)."""
    data = _read_json(path)
    try:
        listed = [s["hf_subset"] for s in data["scores"].get(SPLIT, [])]
        subsets = {s["hf_subset"]: _subset_main(s) for s in data["scores"].get(SPLIT, [])}
        data["task_name"]  # noqa: B018 (checked here, read below)
    except (KeyError, TypeError, AttributeError) as exc:
        raise HarnessError(f"{path} is not an mteb TaskResult (no {exc})") from None
    if len(listed) != len(subsets):
        twice = next(name for name in listed if listed.count(name) > 1)
        raise HarnessError(f"{path}: subset {twice!r} is scored twice")
    expected = list(spec.options.get("subsets") or [])
    if spec.options.get("by_language"):
        expected = list(spec.languages)
    expected = expected or ["default"]
    if sorted(subsets) != sorted(expected) or any(v is None for v in subsets.values()):
        return None
    for name, value in subsets.items():
        # mteb writes main_score as a fraction in [0, 1]; anything else is not a score
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise HarnessError(f"{path}: subset {name!r} has main_score {value!r}, not a number")
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise HarnessError(
                f"{path}: subset {name!r} has main_score {value!r}, outside [0, 1] where mteb "
                "writes scores"
            )
    main = spec.main_metric
    metrics = {f"{main}_{name}": 100.0 * subsets[name] for name in expected if name != "default"}
    score = 100.0 * sum(subsets.values()) / len(subsets)
    if len(expected) > 1:
        metrics[f"{main}_group_mean"] = score
    return {
        "score": round(score, 4),
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "mteb_task": data["task_name"],
        "dataset_revision": data.get("dataset_revision"),
        "mteb_version": data.get("mteb_version"),
    }


def _git_head(repo: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def import_mteb(
    repo: str | Path,
    specs: dict[str, TaskSpec],
    commit: str,
    models: Sequence[str] = DEFAULT_MODELS,
) -> dict[str, Any]:
    """The reported entries of `models` for every task in `specs` that mteb names, from a
    checkout of mteb's results repository at `commit` (checked when the folder is a git
    checkout)."""
    repo = Path(repo)
    root = repo / "results"
    if not root.is_dir():
        raise HarnessError(
            f"{repo} has no results/ folder; pass a checkout of "
            f"github.com/embeddings-benchmark/results with --from"
        )
    head = _git_head(repo)
    if head is not None and head != commit:
        raise HarnessError(f"{repo} is at commit {head}, not {commit}; check out {commit} first")
    by_mteb = {s.mteb_name: s for s in specs.values() if s.mteb_name}
    entries, skipped = [], []
    for name in models:
        folder = root / model_folder(name)
        if not folder.is_dir():
            skipped.append({"model": name, "why": "not in the results repository"})
            continue
        found = 0
        revisions = sorted(p for p in folder.iterdir() if p.is_dir())
        experiments = sorted(
            p for r in revisions for p in (r / EXPERIMENTS).glob("*") if p.is_dir()
        )
        for where in revisions + experiments:
            entry = _import_folder(where, name, by_mteb, repo, skipped)
            if entry is not None:
                entries.append(entry)
                found += 1
        if not found:
            skipped.append(
                {"model": name, "why": "no result for a task mteb and this harness share"}
            )
    return {
        "source": (
            "Scores published in mteb's results repository "
            "(github.com/embeddings-benchmark/results) at the commit below, as written by mteb "
            "for each model and revision. Reported, not measured by this project."
        ),
        "repository": "https://github.com/embeddings-benchmark/results",
        "commit": commit,
        "models": entries,
        "skipped": skipped,
    }


def _import_folder(
    folder: Path,
    name: str,
    by_mteb: dict[str, TaskSpec],
    repo: Path,
    skipped: list[dict[str, str]],
) -> dict[str, Any] | None:
    experiment = folder.parent.name == EXPERIMENTS
    revision_folder = folder.parent.parent if experiment else folder
    if (folder / "model_meta.json").exists():
        try:
            meta = _read_json(folder / "model_meta.json")
            why = _bad_meta(meta)
            if why is not None:
                raise HarnessError(f"{folder / 'model_meta.json'}: {why}")
        except HarnessError as exc:
            skipped.append({"model": name, "file": str(folder.relative_to(repo)), "why": str(exc)})
            return None
    elif experiment:
        return None  # mteb's loader skips an experiment folder without its model_meta.json
    else:
        meta = {}  # mteb's loader then takes the name and revision from the path
    tasks = {}
    for path in sorted(folder.glob("*.json")):
        spec = by_mteb.get(path.stem)
        if spec is None:
            continue
        where = str(path.relative_to(repo))
        try:
            entry = read_task_file(path, spec)
        except HarnessError as exc:  # one bad file of a third-party checkout: named, skipped
            skipped.append({"model": name, "file": where, "why": str(exc)})
            continue
        if entry is None:
            skipped.append(
                {"model": name, "file": where, "why": "its subsets are not the ones mteb scores"}
            )
            continue
        tasks[spec.name] = {**entry, "path": where}
    if not tasks:
        return None
    return {
        "model": meta.get("name") or name,
        "revision": meta.get("revision") or revision_folder.name,
        "experiment": meta.get("experiment_kwargs") or None,
        "n_parameters": meta.get("n_parameters"),
        "embed_dim": meta.get("embed_dim"),
        "tasks": tasks,
    }


def _bad_meta(meta: Any) -> str | None:
    """Why a model_meta.json cannot describe a model, or None."""
    if not isinstance(meta, dict):
        return "is not a JSON object"
    for key in ("name", "revision"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            return f"{key} is {meta[key]!r}, not a string"
    for key in ("n_parameters", "embed_dim"):
        value = meta.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            return f"{key} is {value!r}, not a count"
    return None


def reported_label(entry: dict[str, Any]) -> str:
    return f"{entry['name']} (reported, mteb)"


def load_reported(path: str | Path) -> list[dict[str, Any]]:
    """The imported entries of one results/reported file written by `import_mteb` ([] for a
    file of another kind), each with a `name` to show: the model, its revision's first 7
    characters where the file holds several revisions of it, and its experiment, if any."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    entries = data.get("models", []) if isinstance(data, dict) and "commit" in data else []
    revisions: dict[str, set[str]] = {}
    for entry in entries:
        revisions.setdefault(entry["model"], set()).add(entry["revision"])
    for entry in entries:
        name = entry["model"]
        if len(revisions[name]) > 1:
            name += f" rev {entry['revision'][:7]}"
        if entry.get("experiment"):
            name += f" [{experiment_name(entry['experiment'])}]"
        entry["name"] = name
    return entries
