"""The bundled offline libdocs suite: a byte-reproducible build, the properties its design
promises (long multi-topic pages, no word-for-word give-aways, splits without near-copies),
its loaders and a short end-to-end run."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.registry import get_tasks
from harness.tasks import build_libdocs, libdocs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tasks" / "data" / "libdocs"
META = json.loads((DATA / "SOURCE.json").read_text())


def rows(name: str) -> list[dict]:
    with gzip.open(DATA / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def test_rebuilding_from_the_snapshot_gives_the_same_bytes(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "tasks/build_libdocs.py",
            "build",
            "--raw",
            str(DATA / "raw.jsonl.gz"),
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr

    def content_sha256(path: Path) -> str:
        with gzip.open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()

    for name, digest in META["sha256"].items():
        path = DATA / name if name == "raw.jsonl.gz" else tmp_path / name
        assert content_sha256(path) == digest, name
        assert content_sha256(DATA / name) == digest, name
        if name != "raw.jsonl.gz":  # the compressed files too, on this zlib build
            assert path.read_bytes() == (DATA / name).read_bytes(), name
    rebuilt = json.loads((tmp_path / "SOURCE.json").read_text())
    for key in ("pages_per_split", "queries_per_split", "test_tasks", "quick_tasks"):
        assert rebuilt[key] == META[key]


def test_pages_are_long_multi_topic_and_never_cut_by_the_models():
    from transformers import AutoTokenizer

    from harness.baselines.backbones import MINILM, resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path(MINILM))
    pages = [p for p in rows("pages") if p["split"] == "test"]
    lengths = [len(tok(p["title"] + "\n" + p["text"])["input_ids"]) for p in pages]
    # MetaEmbed on MiniLM reads 512 - 80 meta slots = 432 tokens, special tokens included.
    assert max(lengths) <= 432
    assert sorted(lengths)[len(lengths) // 2] >= 250  # median page: a few hundred tokens
    assert all(len(p["members"]) >= 3 for p in pages)
    for p in pages[:50]:
        for member in p["members"]:
            assert member + "(" in p["text"] or member + "\n" in p["text"]


def test_no_query_occurs_word_for_word_in_any_page():
    pages = [" " + " ".join(words(p["title"] + " " + p["text"])) + " " for p in rows("pages")]
    queries = [q for q in rows("queries") if q["split"] == "test"]
    assert len(queries) >= 1000
    texts = [" ".join(words(q["text"])) for q in queries]
    assert len(set(texts)) == len(texts)  # no two queries alike either
    for text in random.Random(0).sample(texts, 300):
        assert not any(f" {text} " in page for page in pages), text


def test_splits_share_no_module_and_no_near_copy_of_a_test_member():
    pages = rows("pages")
    modules = {s: {p["module"] for p in pages if p["split"] == s} for s in ("train", "dev", "test")}
    assert not modules["train"] & modules["test"] and not modules["dev"] & modules["test"]
    assert not modules["train"] & modules["dev"]

    def shingles(text: str) -> set[str]:
        w = words(text)
        return {" ".join(w[i : i + 8]) for i in range(max(1, len(w) - 7))}

    def sections(page: dict) -> list[str]:
        """The page cut at each member's heading line (its name, then "(" or nothing)."""
        heads, out = list(page["members"]), []
        for line in page["text"].split("\n"):
            if heads and (line.startswith(heads[0] + "(") or line == heads[0]):
                heads.pop(0)
                out.append([])
            out[-1].append(line)
        assert not heads, page["id"]
        return ["\n".join(lines) for lines in out]

    sections = {
        s: [shingles(sec) for p in pages if p["split"] == s for sec in sections(p)]
        for s in ("train", "test")
    }
    for test_section in random.Random(1).sample(sections["test"], 300):
        for train_section in sections["train"]:
            overlap = len(test_section & train_section) / len(test_section | train_section)
            assert overlap < 0.5
    summaries = {
        s: {q["text"].lower() for q in rows("queries") if q["split"] == s} for s in modules
    }
    assert not summaries["train"] & summaries["test"]


def test_corpus_and_lists_tasks_have_different_queries_and_long_lists():
    corpus, lists = get_tasks("libdocs")
    a, b = corpus.load(None), lists.load(None)
    assert len(a.queries) + len(b.queries) >= 1000
    assert not {q.id for q in a.queries} & {q.id for q in b.queries}
    assert len(a.candidates) == len(b.candidates) == META["pages_per_split"]["test"]
    pages = {p["id"]: p for p in rows("pages")}
    for qid, ids in list(b.candidate_lists.items())[:40]:
        assert len(ids) == 100 == len(set(ids)) and b.qrels[qid] == {ids[0]: 1}
        package = pages[ids[0]]["package"]
        same = [i for i in ids[1:] if pages[i]["package"] == package]
        assert ids[1 : 1 + len(same)] == same  # the same library's pages come first
    for q in a.queries[:40]:
        (page,) = a.qrels[q.id]
        assert pages[page]["split"] == "test"


def test_quick_tasks_are_a_fixed_subset_of_the_test_tasks():
    quick_corpus, quick_lists = get_tasks("libdocs-quick")
    full_corpus = get_tasks("libdocs-corpus")[0].load(None)
    qc, ql = quick_corpus.load(None), quick_lists.load(None)
    assert len(qc.candidates) == len(ql.candidates) == 160
    kept = {c.id for c in qc.candidates}
    assert {q.id for q in qc.queries} == {
        q.id for q in full_corpus.queries if next(iter(full_corpus.qrels[q.id])) in kept
    }
    assert all(set(ids) <= kept for ids in ql.candidate_lists.values())


def test_train_examples_have_sibling_hard_negatives_and_a_stable_order():
    from harness.training.data import load_source

    pages = {p["id"]: p for p in rows("pages")}
    examples = load_source("libdocs:1200", None)
    assert len(examples) == 1200
    assert [e.query.id for e in examples] == [e.query.id for e in libdocs.train_examples()[:1200]]
    for e in examples[:100]:
        assert pages[e.positive.id]["split"] == "train"
        assert e.negative is not None and e.negative.id != e.positive.id
        module = pages[e.positive.id]["module"]
        if sum(p["module"] == module for p in pages.values()) > 1:
            assert pages[e.negative.id]["module"] == module  # a sibling page of the same module


def test_extraction_reads_docstrings_without_memory_addresses():
    raw = build_libdocs.read_jsonl(DATA / "raw.jsonl.gz")
    address = re.compile(r" at 0x[0-9a-fA-F]+")  # a live object's repr; docs may say "0x..."
    assert not any(address.search(r["signature"]) or address.search(r["doc"]) for r in raw)
    assert {r["package"] for r in raw} == set(build_libdocs.LICENSES)


@pytest.mark.parametrize("text", ["", "short"])
def test_page_rendering_is_deterministic(text):
    assert libdocs.render_page("t", text) == libdocs.render_page.__wrapped__("t", text)


def test_default_models_end_to_end_on_a_slice(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--model",
            "metaembed-mini,single-mean",
            "--tasks",
            "libdocs-quick-corpus",
            "--limit",
            "12",
            "--output",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr
    for model in ("metaembed-mini", "single-mean"):
        assert f"| {model} @ " in out.stdout
    record = json.loads(
        (tmp_path / "out" / "metaembed-mini" / "libdocs-quick-corpus.json").read_text()
    )
    assert [b["label"] for b in record["budgets"]] == ["1x1", "2x4", "4x8", "8x16", "16x64"]
    assert record["task"]["n_candidates"] == 160 and record["task"]["n_queries"] == 12
    assert record["model"]["training"]["data"].startswith("libdocs")
    assert record["model"]["backbone_params"] == 22_713_216  # all-MiniLM-L6-v2 alone
    assert (tmp_path / "out" / "plots" / "score_vs_index_bytes.png").is_file()


@pytest.mark.parametrize(
    "script, stage, real",
    [("recipe-75steps/study.sh", "minilm-s9", "zero-shot"), ("study-3epochs.sh", "s9", "s1")],
)
def test_the_study_script_refuses_an_unknown_stage_before_doing_anything(
    tmp_path, script, stage, real
):
    out = subprocess.run(
        ["bash", f"results/libdocs/{script}", str(tmp_path / "study"), stage],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and f"unknown stage {stage}" in out.stderr
    assert not (tmp_path / "study").exists()
    swapped = subprocess.run(
        ["bash", f"results/libdocs/{script}", real],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert swapped.returncode == 2 and "the first argument is the output folder" in swapped.stderr


def study(tmp_path: Path, stage: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """study-3epochs.sh run on one stage into tmp_path/study, with `env` as its environment."""
    args = ["bash", "results/libdocs/study-3epochs.sh", str(tmp_path / "study"), stage]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_second_study_says_where_the_curve_weights_are_missing(tmp_path):
    """Seed 0 of the second recipe is each model's learning-curve run: without its weights the
    script stops before any evaluation, naming the folder and the variable that points to it."""
    (tmp_path / "curves" / "metaembed-mmr-minilm").mkdir(parents=True)
    out = study(tmp_path, "s0", {**os.environ, "CURVES": str(tmp_path / "curves")})
    assert out.returncode == 1, out.stderr
    assert "metaembed-mmr-minilm-s0: no trained weights in" in out.stderr and "CURVES" in out.stderr
    assert not (tmp_path / "study").exists()


def test_the_second_study_refuses_to_evaluate_a_curve_run_still_training(tmp_path):
    """A curve run saves its weights every 5 steps: seed 0 is evaluated only once its log has
    reached the steps its config asks for, or a half-trained model's result file would stand."""
    run = tmp_path / "curves" / "metaembed-mmr-minilm"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    trained(run, steps=573, reached=505)
    out = study(tmp_path, "s0", {**os.environ, "CURVES": str(tmp_path / "curves")})
    assert out.returncode == 1, out.stderr
    assert f"metaembed-mmr-minilm-s0: the training run in {run} has not finished" in out.stderr
    assert not (tmp_path / "study").exists()


def test_the_second_study_keeps_seed_0_results_whose_weights_are_gone(tmp_path):
    """A seed-0 model with both result files is not evaluated again, and its curve weights need
    not be on the machine: only the model still missing results is evaluated."""
    for name in ("metaembed-mmr-minilm", "single-mean-ft-minilm", "single-cls-ft-minilm"):
        folder = tmp_path / "study" / "seed0" / f"{name}-s0"
        folder.mkdir(parents=True)
        for task in ("libdocs-corpus", "libdocs-lists"):
            (folder / f"{task}.json").write_text("{}")
    one_slot = _finished_run(tmp_path / "curves" / "metaembed-1x1-minilm")
    fake, calls = _fake_python(tmp_path)
    env = {
        **os.environ,
        "CURVES": str(tmp_path / "curves"),
        "PYTHON": str(fake),
        "CALLS": str(calls),
    }
    out = study(tmp_path, "s0", env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("evaluated already, skipped") == 3
    (line,) = calls.read_text().splitlines()
    assert line.startswith("-m harness run --model metaembed ")
    assert f"checkpoint={one_slot}," in line and "name=metaembed-1x1-minilm-s0" in line


@pytest.mark.parametrize("lever, status", [("norm", 1), ("fixed-slots", 1), ("temperature", 2)])
def test_the_second_study_takes_metaembed_seed_0_from_the_chosen_levers_curve(
    tmp_path, lever, status
):
    """With LEVER set, MetaEmbed's seed 0 is that lever's curve run (curves.sh's name); an
    unknown lever is refused before anything runs."""
    (tmp_path / "curves" / "metaembed-mmr-minilm" / "adapter").mkdir(parents=True)
    (tmp_path / "curves/metaembed-mmr-minilm/adapter/adapter_model.safetensors").write_bytes(b"")
    out = study(tmp_path, "s0", {**os.environ, "CURVES": str(tmp_path / "curves"), "LEVER": lever})
    assert out.returncode == status, out.stderr
    if status == 1:
        assert f"no trained weights in {tmp_path}/curves/metaembed-mmr-minilm-{lever}" in out.stderr
    else:
        assert f"unknown LEVER={lever}" in out.stderr
    assert not (tmp_path / "study").exists()


def _finished_run(folder: Path, backbone: str = "sentence-transformers/all-MiniLM-L6-v2") -> Path:
    (folder / "adapter").mkdir(parents=True)
    (folder / "state").mkdir()
    config = {"format": 1, "family": "metaembed", "name": "metaembed-mmr-minilm"}
    (folder / "metaembed_config.json").write_text(json.dumps({**config, "backbone": backbone}))
    for name in ("metaembed.safetensors", "adapter/adapter_model.safetensors", "state/optim.pt"):
        (folder / name).write_bytes(name.encode())
    (folder / "adapter/adapter_config.json").write_text("{}")
    trained(folder, steps=573)
    return folder


def trained(folder: Path, steps: int, reached: int | None = None) -> Path:
    """A training run's config and log as `harness train` writes them, its last logged step
    `reached` (default: all `steps`)."""
    config = {"model": "metaembed", "output": str(folder), "steps": steps, "epochs": 3.0}
    (folder / "train_config.json").write_text(json.dumps(config, indent=2) + "\n")
    log = [{"step": s, "loss": 1.0 / s} for s in range(1, (reached or steps) + 1)]
    (folder / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return folder


def test_bundle_script_copies_a_run_as_metaembed_mini_and_refuses_an_unfinished_one(tmp_path):
    run = _finished_run(tmp_path / "run")
    target = tmp_path / "bundled"
    (target / "adapter").mkdir(parents=True)
    (target / "old.txt").write_text("the previous model")

    def bundle(ckpt: Path) -> subprocess.CompletedProcess:
        script = ROOT / "results" / "libdocs" / "bundle.sh"
        args = ["bash", str(script), str(ckpt), str(target)]
        return subprocess.run(args, capture_output=True, text=True, timeout=60)

    refused = bundle(_finished_run(tmp_path / "mpnet", backbone="sentence-transformers/mpnet"))
    assert refused.returncode != 0 and "all-MiniLM-L6-v2" in refused.stderr
    (run / "train_log.jsonl").unlink()
    refused = bundle(run)
    assert refused.returncode == 2 and "train_log.jsonl is missing" in refused.stderr
    assert (target / "old.txt").read_text() == "the previous model"  # nothing was touched

    trained(run, steps=573, reached=570)  # saved at step 570, still training
    refused = bundle(run)
    assert refused.returncode == 2 and "has not finished" in refused.stderr
    assert (target / "old.txt").read_text() == "the previous model"

    trained(run, steps=573)
    done = bundle(run)
    assert done.returncode == 0, done.stderr
    copied = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert copied == [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "metaembed.safetensors",
        "metaembed_config.json",
        "train_config.json",
        "train_log.jsonl",
    ]
    config = json.loads((target / "metaembed_config.json").read_text())
    assert config["name"] == "metaembed-mini" and config["family"] == "metaembed"
    assert (target / "metaembed.safetensors").read_bytes() == b"metaembed.safetensors"
    assert [p.name for p in tmp_path.iterdir() if ".new." in p.name] == []


def test_curve_table_compares_a_lever_with_the_random_start_at_matched_steps(tmp_path):
    budgets = ["1x1", "2x4", "4x8", "8x16", "16x64"]

    def write(run: str, by_step: dict[int, float]) -> None:
        (tmp_path / run).mkdir()
        rows = [{"step": s, "scores": dict.fromkeys(budgets, v)} for s, v in by_step.items()]
        (tmp_path / run / "dev_scores.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows)
        )

    write("metaembed-mmr-minilm", {0: 0.1, 100: 0.60, 125: 0.62, 150: 0.64, 175: 0.65})
    # the lever reached step 150; steps before 100 and the base's step 175 are not compared
    write("metaembed-mmr-minilm-norm", {0: 0.5, 100: 0.61, 125: 0.65, 150: 0.62})
    script = ROOT / "results" / "libdocs" / "curves" / "table.py"
    args = [sys.executable, str(script), "--levers", "--curves", str(tmp_path)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    row = [line for line in out.stdout.splitlines() if line.startswith("| norm ")]
    # gaps +1, +3, -2 points: mean +0.7, lowest -2.0, highest +3.0
    assert row == ["| norm | 100-150 (3) | " + " | ".join(["+0.7 (-2.0..+3.0)"] * 5) + " |"]
    out = subprocess.run([*args, "--to", "125"], capture_output=True, text=True, timeout=60)
    row = [line for line in out.stdout.splitlines() if line.startswith("| norm ")]
    assert row == ["| norm | 100-125 (2) | " + " | ".join(["+2.0 (+1.0..+3.0)"] * 5) + " |"]


FAKE_PYTHON = """#!/usr/bin/env bash
# stands in for python: records each command; `train` leaves weights where --output says
echo "$*" >> "$CALLS"
if [ "$3" = train ]; then
  while [ $# -gt 0 ]; do
    if [ "$1" = --output ]; then
      mkdir -p "$2/adapter"; touch "$2/adapter/adapter_model.safetensors"
      printf '{\n  "steps": 573,\n  "epochs": 3.0\n}\n' > "$2/train_config.json"
      echo '{"step": 573, "loss": 0.1}' > "$2/train_log.jsonl"
    fi
    shift
  done
fi
"""


@pytest.mark.parametrize(
    "stage, lever, expected",
    [
        ("single-s1", "none", [("single-mean", "--seed 1", "")]),
        ("mmr-s2", "norm", [("metaembed", "--seed 2", "--normalize-scores")]),
        (
            "s1",
            "init-cls",
            [("metaembed", "--seed 1", "meta_init=cls"), ("single-mean", "--seed 1", "")],
        ),
    ],
)
def test_the_second_study_trains_what_each_stage_names(tmp_path, stage, lever, expected):
    """The commands a stage runs (recorded by a stand-in for python): which model, seed and
    lever is trained, each followed by its evaluation on the test tasks."""
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "PYTHON": str(fake), "CALLS": str(calls), "LEVER": lever}
    out = study(tmp_path, stage, env)
    assert out.returncode == 0, out.stderr
    lines = calls.read_text().splitlines()
    assert len(lines) == 2 * len(expected)
    for (family, seed, lever_part), train, run in zip(
        expected, lines[::2], lines[1::2], strict=True
    ):
        assert train.startswith(f"-m harness train --model {family} ") and seed in train
        assert lever_part in train and "--epochs 3" in train
        assert run.startswith(f"-m harness run --model {family} ") and "--tasks libdocs" in run
        assert "--normalize-scores" not in train or family == "metaembed"
        # a MetaEmbed seed also seeds its random meta-token table (the model argument seed=)
        assert (f",seed={seed[-1]}" in train) == (family == "metaembed")


def _fake_python(tmp_path: Path) -> tuple[Path, Path]:
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    return fake, tmp_path / "calls.txt"


def test_every_model_the_second_claims_file_reads_is_one_the_study_writes(tmp_path):
    """claims-3epochs.toml names result files by model name: each must be one that some stage of
    study-3epochs.sh writes (recorded by the stand-in python), or its claim could never run."""
    import tomllib

    fake, calls = _fake_python(tmp_path)
    curves = tmp_path / "curves"
    for run in ("metaembed-mmr-minilm-norm", "single-mean-ft-minilm", "single-cls-ft-minilm"):
        (curves / run / "adapter").mkdir(parents=True)
        (curves / run / "adapter" / "adapter_model.safetensors").write_bytes(b"")
        trained(curves / run, steps=573)
    (curves / "metaembed-1x1-minilm").symlink_to(curves / "single-cls-ft-minilm")
    env = {**os.environ, "PYTHON": str(fake), "CALLS": str(calls), "CURVES": str(curves)}
    stages = ["s0", "zero-shot", "s1", "s2", "nommr", "cls-1x1"]
    out = subprocess.run(
        ["bash", "results/libdocs/study-3epochs.sh", str(tmp_path / "study"), *stages],
        cwd=ROOT,
        env={**env, "LEVER": "norm"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    runs = [line for line in calls.read_text().splitlines() if line.startswith("-m harness run")]
    written = {re.search(r"name=([\w.-]+)", line).group(1) for line in runs}
    assert "naive-multi-minilm" in written and "single-mean-minilm" in written
    spec = tomllib.loads((ROOT / "results" / "libdocs" / "claims-3epochs.toml").read_text())
    read = {model for models in spec["systems"].values() for model in models}
    assert read <= written, sorted(read - written)
    named = {
        c.split("@")[0].strip() for claim in spec["claims"] for p in claim["comparisons"] for c in p
    }
    assert named <= set(spec["systems"]), sorted(named - set(spec["systems"]))


LEVER_PARTS = r"--normalize-scores|--own-lr 1e-2|,meta_init=\w+|,slot_positions=\w+"


@pytest.mark.parametrize(
    "model, expected",
    [
        ("metaembed-norm", ["--normalize-scores"]),
        ("metaembed-init-cls", [",meta_init=cls"]),
        ("metaembed-fixed-slots", [",slot_positions=fixed"]),
        ("metaembed-own-lr", ["--own-lr 1e-2"]),
    ],
)
def test_the_curves_train_each_lever_as_the_study_does(tmp_path, model, expected):
    """curves.sh and study-3epochs.sh read one lever table (lib.sh): a lever's curve run and
    the study's MetaEmbed seeds with that LEVER get the same model argument and flags."""
    fake, calls = _fake_python(tmp_path)
    env = {**os.environ, "PYTHON": str(fake), "CALLS": str(calls)}

    def trained(script: str, arg: str, lever: str = "none") -> str:
        out = subprocess.run(
            ["bash", f"results/libdocs/{script}", str(tmp_path / script), arg],
            cwd=ROOT,
            env={**env, "LEVER": lever},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        train = calls.read_text().splitlines()[0]
        calls.unlink()
        return train

    curve = trained("curves.sh", model)
    assert f"--output {tmp_path}/curves.sh/metaembed-mmr-minilm-{model[10:]} " in curve
    assert re.findall(LEVER_PARTS, curve) == expected and "--eval-every 25" in curve
    seed = trained("study-3epochs.sh", "mmr-s1", lever=model[10:])
    assert re.findall(LEVER_PARTS, seed) == expected and "--seed 1" in seed
    assert re.findall(LEVER_PARTS, trained("study-3epochs.sh", "mmr-s2")) == []


def test_slot_spread_measures_agree_with_hand_computed_cases():
    """The spread measures of results/libdocs/curves/slot_spread.py on cases worked by hand:
    orthonormal slots (cosine 0, effective rank T) and one repeated direction (1 and 1)."""
    import importlib.util

    import torch

    path = ROOT / "results" / "libdocs" / "curves" / "slot_spread.py"
    spec = importlib.util.spec_from_file_location("slot_spread", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    orthonormal = torch.eye(4).unsqueeze(0)  # one item, 4 slots, D = 4
    repeated = torch.tensor([[[0.6, 0.8]] * 3])
    assert module.mean_offdiagonal_cosine(orthonormal) == pytest.approx(0.0)
    assert module.mean_offdiagonal_cosine(repeated) == pytest.approx(1.0)
    assert module.effective_rank(orthonormal) == pytest.approx(4.0)
    assert module.effective_rank(repeated) == pytest.approx(1.0)
    # two slots at 60 degrees and one orthogonal to both: cosines 0.5, 0, 0 -> mean 1/6
    mixed = torch.tensor([[[1.0, 0.0, 0.0], [0.5, 0.75**0.5, 0.0], [0.0, 0.0, 1.0]]])
    assert module.mean_offdiagonal_cosine(mixed) == pytest.approx(1 / 6)
