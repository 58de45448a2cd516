"""MMR training: the loss against a hand-written reference, the trainer, resume, the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import toy_tasks
from safetensors.torch import load_file

import harness
from harness.errors import UsageError
from harness.multivectors import MultiVectors
from harness.protocol import Item
from harness.training.loop import TrainConfig, read_log, train
from harness.training.losses import mmr_loss, parse_groups

TESTS = Path(__file__).parent
METAEMBED_MINI = TESTS.parent / "baselines" / "checkpoints" / "metaembed-mini"


def reference_loss(
    q, q_len, c, c_len, targets, groups, temperature, exclude=None, mean=True, normalize=False
):
    """Per-pair loops: MaxSim as a sum of maxima (over the query's vectors in the group when
    `normalize`), then -log softmax of the target column; the weighted sum over groups, divided
    by their number (the released reduction) or not."""
    total = 0.0
    terms = []
    for rq, rc, weight in groups:
        term = 0.0
        for i in range(q.shape[0]):
            row = []
            for j in range(c.shape[0]):
                if exclude is not None and exclude[i][j]:
                    continue
                score = 0.0
                for a in range(min(rq, int(q_len[i]))):
                    score = score + max(
                        torch.dot(q[i, a], c[j, b]) for b in range(min(rc, int(c_len[j])))
                    )
                if normalize:
                    score = score / min(rq, int(q_len[i]))
                row.append((j, score / temperature))
            log_z = torch.logsumexp(torch.stack([s for _, s in row]), dim=0)
            term = term + (log_z - dict(row)[int(targets[i])])
        terms.append(term / q.shape[0])
        total = total + weight * terms[-1]
    return (total / len(groups) if mean else total), terms


def test_mmr_loss_and_gradients_match_the_reference():
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(3, 4, 5, generator=g), dim=-1).requires_grad_()
    c = torch.nn.functional.normalize(torch.randn(5, 6, 5, generator=g), dim=-1).requires_grad_()
    q_len, c_len = torch.tensor([4, 3, 4]), torch.tensor([6, 6, 2, 5, 6])
    targets = torch.tensor([0, 1, 2])
    exclude = torch.zeros(3, 5, dtype=torch.bool)
    exclude[0, 3] = True  # a copy of query 0's positive
    groups = [(1, 1, 1.0), (2, 4, 0.5), (4, 6, 2.0)]
    for reduction, normalize in (("mean", False), ("sum", False), ("mean", True)):
        q.grad, c.grad = None, None
        ours, our_terms = mmr_loss(
            q, q_len, c, c_len, targets, groups, 0.03, exclude, reduction, normalize
        )
        ours.backward()
        q_grad, c_grad = q.grad.clone(), c.grad.clone()
        q.grad, c.grad = None, None
        ref, ref_terms = reference_loss(
            q, q_len, c, c_len, targets, groups, 0.03, exclude, reduction == "mean", normalize
        )
        ref.backward()
        assert float(ours) == pytest.approx(float(ref), rel=1e-5)
        assert [float(t) for t in our_terms] == pytest.approx(
            [float(t) for t in ref_terms], rel=1e-5
        )
        torch.testing.assert_close(q_grad, q.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(c_grad, c.grad, rtol=1e-4, atol=1e-5)


def test_the_released_loss_puts_only_each_querys_own_hard_negative_in_its_softmax():
    """Row i of the released ColbertInBatchNegativeLoss: [every positive, own negative], the
    groups' weighted terms summed and divided by their number. Written out for B = 3."""
    from harness.training.data import Example
    from harness.training.loop import _micro_loss

    g = torch.Generator().manual_seed(1)
    table = torch.nn.functional.normalize(torch.randn(9, 2, 4, generator=g), dim=-1)
    items = [Item(f"x{n}", f"text {n}") for n in range(9)]
    vectors = {it.content_hash: table[n] for n, it in enumerate(items)}

    class Lookup:  # an encoder whose vectors are a fixed table, for both roles
        class card:
            nested = True

        def embed(self, batch, role, count=None):
            v = torch.stack([vectors[it.content_hash] for it in batch])
            return MultiVectors(v, torch.full((len(batch),), 2))

    examples = [Example(items[i], items[3 + i], items[6 + i]) for i in range(3)]
    groups = [(1, 1, 1.0), (2, 2, 3.0)]
    for negatives in ("own", "batch"):
        config = TrainConfig(negatives=negatives)
        total, _ = _micro_loss(Lookup(), examples, groups, config)
        expected = 0.0
        for rq, rc, weight in groups:
            term = 0.0
            for i in range(3):
                columns = [3, 4, 5] + ([6 + i] if negatives == "own" else [6, 7, 8])
                scores = torch.tensor(
                    [
                        sum(
                            max(float(table[i, a] @ table[j, b]) for b in range(rc))
                            for a in range(rq)
                        )
                        for j in columns
                    ]
                )
                term += float(torch.logsumexp(scores / 0.03, 0) - scores[i] / 0.03) / 3
            expected += weight * term
        assert float(total) == pytest.approx(expected / len(groups), rel=1e-5), negatives


def test_groups_must_increase_and_fit_the_slots():
    assert parse_groups("1x1,4x8", 16, 64) == [(1, 1, 1.0), (4, 8, 1.0)]
    assert parse_groups("1x1=2,4x8=0.5", 16, 64) == [(1, 1, 2.0), (4, 8, 0.5)]
    assert parse_groups("[[1, 1, 1.0], [16, 64, 0.25]]", 16, 64) == [(1, 1, 1.0), (16, 64, 0.25)]
    with pytest.raises(UsageError, match="weights must be positive"):
        parse_groups("1x1=0,4x8", 16, 64)
    with pytest.raises(UsageError, match="r_q, r_c"):
        parse_groups("[[1, 1, 1.0, 2]]", 16, 64)
    with pytest.raises(UsageError, match="strictly increasing"):
        parse_groups("1x1,1x4", 16, 64)
    with pytest.raises(UsageError, match="strictly increasing"):
        parse_groups("4x8,2x16", 16, 64)
    with pytest.raises(UsageError, match="exceeds"):
        parse_groups("1x1,32x64", 16, 64)


def test_a_few_steps_strictly_reduce_the_loss(tiny_models, tmp_path):
    # The whole training set in every batch, a frozen backbone: the same objective each step.
    config = TrainConfig(
        model="metaembed",
        model_args={"backbone": str(tiny_models["bert"]), "ocr": "none"},
        data=f"jsonl:{_jsonl(tmp_path, 8)}",
        output=str(tmp_path / "ckpt"),
        steps=5,
        batch_size=8,
        warmup=0,
        schedule="constant",
        own_lr=3e-3,
        tune="frozen",
        progress=False,
    )
    train(config)
    losses = [r["loss"] for r in read_log(tmp_path / "ckpt")]
    assert len(losses) == 5 and all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses


def _jsonl(tmp_path: Path, n: int) -> Path:
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
    ]
    path = tmp_path / "train.jsonl"
    with open(path, "w") as handle:
        for i in range(n):
            a, b = words[i % 10], words[(3 * i + 1) % 10]
            handle.write(
                json.dumps(
                    {
                        "query": f"{a} {b}",
                        "positive": f"the {a} and {b} page",
                        "negative": f"the {b} page",
                    }
                )
                + "\n"
            )
    return path


def test_training_lifts_retrieval_above_the_untrained_model(tmp_path):
    common = {
        "output": str(tmp_path / "out"),
        "cache_dir": str(tmp_path / "cache"),
        "data_dir": str(tmp_path / "data"),
        "progress": False,
        "budgets": "16x64",
    }
    before = harness.evaluate(
        harness.get_model("metaembed-mini", {"ocr": "none", "name": "untrained"}),
        [toy_tasks.CORPUS],
        **common,
    )[0]
    train(
        TrainConfig(
            model="metaembed-mini",
            model_args={"ocr": "none"},
            data="task:toy_tasks:CORPUS",
            data_dir=str(tmp_path / "data"),
            output=str(tmp_path / "ckpt"),
            steps=12,
            batch_size=12,
            warmup=2,
            progress=False,
        )
    )
    trained = harness.get_model(
        "metaembed", {"checkpoint": str(tmp_path / "ckpt"), "ocr": "none", "name": "trained"}
    )
    # metaembed-mini carries a LoRA adapter: training went on with that one adapter (saved under
    # the keys of a single LoRA, so loading places every tensor; a second LoRA stacked on it
    # would not load), and its weights moved.
    bundled = load_file(str(METAEMBED_MINI / "adapter" / "adapter_model.safetensors"))
    continued = load_file(str(tmp_path / "ckpt" / "adapter" / "adapter_model.safetensors"))
    assert continued.keys() == bundled.keys()
    assert any(not torch.equal(bundled[k], continued[k]) for k in bundled)
    after = harness.evaluate(trained, [toy_tasks.CORPUS], **common)[0]
    assert after["budgets"][0]["main_score"] > before["budgets"][0]["main_score"] + 0.05, (
        before["budgets"][0]["main_score"],
        after["budgets"][0]["main_score"],
    )


def test_resuming_reaches_the_same_state_as_an_uninterrupted_run(tiny_models, tmp_path):
    def config(output, **kw):
        return TrainConfig(
            model="metaembed",
            model_args={"backbone": str(tiny_models["bert"]), "ocr": "none"},
            data=f"jsonl:{_jsonl(tmp_path, 20)}",
            output=str(output),
            steps=6,
            batch_size=4,
            warmup=2,
            tune="lora",
            lora_r=4,
            progress=False,
            **kw,
        )

    train(config(tmp_path / "straight"))
    train(config(tmp_path / "resumed", run_steps=2, save_every=2))
    assert json.loads((tmp_path / "resumed" / "state" / "meta.json").read_text())["step"] == 2
    train(config(tmp_path / "resumed", run_steps=3))
    train(config(tmp_path / "resumed"))
    a = load_file(str(tmp_path / "straight" / "state" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "state" / "trainable.safetensors"))
    assert a.keys() == b.keys() and any("lora_" in k for k in a) and "meta_tokens" in a
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    steps = [r["step"] for r in read_log(tmp_path / "resumed")]
    assert steps == [1, 2, 3, 4, 5, 6]
    seconds = [r["seconds"] for r in read_log(tmp_path / "resumed")]
    assert seconds == sorted(seconds)  # time so far, not restarted by a resume
    assert [r["loss"] for r in read_log(tmp_path / "resumed")] == pytest.approx(
        [r["loss"] for r in read_log(tmp_path / "straight")], rel=1e-5
    )


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("single-mean", {}),
        ("naive-multi", {"query_vectors": 2, "candidate_vectors": 4}),
        ("colbert", {"dim": 16}),
        ("metaembed", {}),
    ],
)
def test_every_family_trains_and_its_checkpoint_loads(tiny_models, tmp_path, model, extra):
    args = {"backbone": str(tiny_models["bert"]), "ocr": "none", **extra}
    out = train(
        TrainConfig(
            model=model,
            model_args=args,
            data=f"jsonl:{_jsonl(tmp_path, 6)}",
            output=str(tmp_path / model),
            steps=2,
            batch_size=4,
            lora_r=4,
            progress=False,
            objective="nommr" if model == "metaembed" else "mmr",
        )
    )
    loaded = harness.get_model(model, {"checkpoint": str(out), "ocr": "none"})
    mv = loaded.encode([harness.Item("x", "alpha bravo")], role="query")
    assert torch.isfinite(mv.vectors).all()
    assert (out / "loss.png").is_file() and math.isfinite(read_log(out)[-1]["loss"])


def test_full_fine_tuning_exports_the_backbone(tiny_models, tmp_path):
    out = train(
        TrainConfig(
            model="single-mean",
            model_args={"backbone": str(tiny_models["bert"]), "ocr": "none"},
            data=f"jsonl:{_jsonl(tmp_path, 6)}",
            output=str(tmp_path / "full"),
            steps=2,
            batch_size=4,
            tune="full",
            progress=False,
        )
    )
    assert (out / "backbone" / "config.json").is_file()
    loaded = harness.get_model("single-mean", {"checkpoint": str(out), "ocr": "none"})
    assert loaded.backbone.name.endswith("backbone")


def test_cli_trains_from_a_config_file_and_run_loads_the_checkpoint(tiny_models, tmp_path):
    (tmp_path / "train.toml").write_text(
        f'model = "metaembed"\ndata = "jsonl:{_jsonl(tmp_path, 6)}"\nsteps = 2\nbatch_size = 4\nlora_r = 4\n[model_args]\nbackbone = "{tiny_models["bert"]}"\nocr = "none"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS), "HF_HUB_OFFLINE": "1"}
    trained = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "train",
            "--config",
            str(tmp_path / "train.toml"),
            "--output",
            str(tmp_path / "ckpt"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr
    assert len(read_log(tmp_path / "ckpt")) == 2
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--model",
            "metaembed",
            "--model-args",
            f"checkpoint={tmp_path / 'ckpt'},ocr=none",
            "--tasks",
            "toy_tasks:LISTS",
            "--budgets",
            "1x1",
            "--output",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr
    (result,) = (tmp_path / "out").glob("*/*.json")
    training = json.loads(result.read_text())["model"]["training"]
    assert training["steps"] == 2 and training["model"] == "metaembed"  # how it was trained
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "train",
            "--config",
            str(tmp_path / "train.toml"),
            "--groups",
            "4x8,2x16",
            "--output",
            str(tmp_path / "bad"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert bad.returncode == 2 and "strictly increasing" in bad.stderr


def test_mmeb_train_and_colpali_sources_read_the_hub_layouts(tmp_path, monkeypatch):
    import zipfile

    import hub_fixtures as fx
    from datasets import Dataset, Features, Image, Value

    from harness.training.data import load_source

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "data" / "TIGER-Lab" / "MMEB-train"
    rows = {
        "qry": ["<|image_1|> Represent the given image for classification", "find the cat"],
        "qry_image_path": ["images/ImageNet_1K/Train/a.png", ""],
        "pos_text": ["tench", ""],
        "pos_image_path": ["", "images/ImageNet_1K/Train/b.png"],
        "neg_text": ["goldfish", ""],
        "neg_image_path": ["", ""],
    }
    (repo / "ImageNet_1K").mkdir(parents=True)
    Dataset.from_dict(rows).to_parquet(str(repo / "ImageNet_1K" / "train-00000-of-00001.parquet"))
    (repo / "images_zip").mkdir()
    with zipfile.ZipFile(repo / "images_zip" / "ImageNet_1K.zip", "w") as archive:
        archive.writestr("ImageNet_1K/Train/a.png", fx.png("red"))
        archive.writestr("ImageNet_1K/Train/b.png", fx.png("blue"))
    from harness.hub import unzip_images

    unzip_images(repo, "images_zip/ImageNet_1K.zip")
    examples = load_source("mmeb-train:ImageNet_1K", tmp_path / "data")
    assert len(examples) == 2
    assert examples[0].query.image.endswith("a.png") and examples[0].positive.text == "tench"
    assert examples[0].negative.text == "goldfish" and examples[1].negative is None
    assert examples[1].positive.image.endswith("b.png") and examples[1].positive.text is None

    colpali = tmp_path / "data" / "vidore" / "colpali_train_set" / "data"
    colpali.mkdir(parents=True)
    Dataset.from_dict(
        {
            "query": ["what is shown?", None],
            "image": [{"bytes": fx.png("gray"), "path": "p.png"}] * 2,
            "image_filename": ["p.png", "p.png"],
        },
        features=Features(
            {"query": Value("string"), "image": Image(), "image_filename": Value("string")}
        ),
    ).to_parquet(str(colpali / "train-00000-of-00001.parquet"))
    pairs = load_source("colpali", tmp_path / "data")
    assert (
        len(pairs) == 1
        and pairs[0].query.text == "what is shown?"
        and pairs[0].positive.image_bytes() == fx.png("gray")
    )


def test_one_source_shows_every_example_once_per_epoch():
    from harness.protocol import Item
    from harness.training.data import Example, MixtureSampler

    examples = [Example(Item(f"q{i}", f"q {i}"), Item(f"p{i}", f"p {i}")) for i in range(10)]
    sampler = MixtureSampler([("s", 1.0, examples)], batch_size=4, seed=3)
    assert sampler.steps_per_epoch == 3  # batches of 4, 4 and 2
    orders = []
    for epoch in range(2):
        batches = [sampler.batch(step) for step in range(3 * epoch, 3 * epoch + 3)]
        assert [len(b) for b in batches] == [4, 4, 2]
        seen = [e.query.id for b in batches for e in b]
        assert sorted(seen) == sorted(f"q{i}" for i in range(10))
        orders.append(seen)
    assert orders[0] != orders[1]  # each epoch has its own order
    again = MixtureSampler([("s", 1.0, examples)], batch_size=4, seed=3)
    assert [e.query.id for e in again.batch(4)] == orders[1][4:8]  # stateless


def test_epochs_set_the_number_of_steps(tiny_models, tmp_path):
    out = train(
        TrainConfig(
            model="single-mean",
            model_args={"backbone": str(tiny_models["bert"]), "ocr": "none"},
            data=f"jsonl:{_jsonl(tmp_path, 6)}",
            output=str(tmp_path / "ep"),
            epochs=1.5,
            batch_size=4,
            lora_r=4,
            progress=False,
        )
    )
    assert [r["step"] for r in read_log(out)] == [1, 2, 3]  # ceil(1.5 x ceil(6 / 4))
    assert json.loads((out / "train_config.json").read_text())["steps"] == 3


def _train_command(tiny_models, tmp_path, output, *extra):
    (tmp_path / "kill.toml").write_text(
        f'model = "metaembed"\ndata = "jsonl:{_jsonl(tmp_path, 24)}"\nsteps = 20\nbatch_size = 4\n'
        f'warmup = 2\nlora_r = 4\nsave_every = 4\n[model_args]\nbackbone = "{tiny_models["bert"]}"\n'
        'ocr = "none"\n'
    )
    return [
        sys.executable,
        "-m",
        "harness",
        "train",
        "--config",
        str(tmp_path / "kill.toml"),
        "--output",
        str(output),
        "--no-progress",
        *extra,
    ]


def test_a_killed_training_run_resumes_to_the_uninterrupted_result(tiny_models, tmp_path):
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(TESTS), "HF_HUB_OFFLINE": "1"}
    straight = subprocess.run(
        _train_command(tiny_models, tmp_path, tmp_path / "straight"),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert straight.returncode == 0, straight.stderr
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _train_command(tiny_models, tmp_path, killed),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(read_log(killed)) < 5:  # past the save at step 4
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no clean-up code runs
    proc.wait()
    assert 5 <= len(read_log(killed)) < 20
    resumed = subprocess.run(
        _train_command(tiny_models, tmp_path, killed),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    a = load_file(str(tmp_path / "straight" / "state" / "trainable.safetensors"))
    b = load_file(str(killed / "state" / "trainable.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    assert [r["step"] for r in read_log(killed)] == list(range(1, 21))  # no step twice
    assert [r["loss"] for r in read_log(killed)] == pytest.approx(
        [r["loss"] for r in read_log(tmp_path / "straight")], rel=1e-5
    )


def test_a_state_left_mid_swap_is_recovered(tiny_models, tmp_path):
    config = dict(
        model="metaembed",
        model_args={"backbone": str(tiny_models["bert"]), "ocr": "none"},
        data=f"jsonl:{_jsonl(tmp_path, 12)}",
        steps=4,
        batch_size=4,
        warmup=1,
        lora_r=4,
        progress=False,
    )
    train(TrainConfig(**config, output=str(tmp_path / "straight")))
    train(TrainConfig(**config, output=str(tmp_path / "swap"), run_steps=2))
    state = tmp_path / "swap" / "state"
    state.rename(state.with_name("state.old"))  # killed between the two renames of a save
    train(TrainConfig(**config, output=str(tmp_path / "swap")))
    assert [r["step"] for r in read_log(tmp_path / "swap")] == [1, 2, 3, 4]
    a = load_file(str(tmp_path / "straight" / "state" / "trainable.safetensors"))
    b = load_file(str(state / "trainable.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_the_last_smaller_batch_of_an_epoch_is_split_into_grad_accum_parts():
    from harness.training.loop import _split

    assert [len(c) for c in _split(list(range(5)), 4)] == [2, 1, 1, 1]
    assert [len(c) for c in _split(list(range(16)), 4)] == [4, 4, 4, 4]
    assert sum(_split(list(range(7)), 3), []) == list(range(7))


def test_steps_and_epochs_flags_exclude_each_other(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(TESTS), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "harness", "train", "--steps", "3", "--epochs", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 2 and "not both" in out.stderr


def test_training_a_model_with_an_adapter_of_another_rank_is_refused(tmp_path):
    with pytest.raises(UsageError, match="--lora-r 32 --lora-alpha 32"):
        train(
            TrainConfig(
                model="metaembed-mini",
                model_args={"ocr": "none"},
                data="task:toy_tasks:CORPUS",
                data_dir=str(tmp_path / "data"),
                output=str(tmp_path / "ckpt"),
                steps=1,
                lora_r=8,
                progress=False,
            )
        )
    assert not (tmp_path / "ckpt" / "adapter").exists()


def test_an_adapter_that_does_not_fit_its_backbone_fails_loudly(tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from harness.errors import HarnessError

    ckpt = tmp_path / "ckpt"
    shutil.copytree(METAEMBED_MINI, ckpt)
    weights = ckpt / "adapter" / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    # the keys a LoRA stacked on a LoRA is saved under
    save_file(
        {
            k.replace("base_model.model.", "base_model.model.base_model.model.", 1): v
            for k, v in tensors.items()
        },
        str(weights),
    )
    with pytest.raises(HarnessError, match="did not load into its backbone: 74 of 74"):
        harness.get_model("metaembed", {"checkpoint": str(ckpt), "ocr": "none"})


def test_eval_every_writes_dev_scores_at_the_right_steps_and_resumes_without_repeating(
    tiny_models, tmp_path
):
    from harness.training import dev_eval

    def config(**kw):
        return TrainConfig(
            model="metaembed",
            model_args={"backbone": str(tiny_models["bert"]), "ocr": "none"},
            data=f"jsonl:{_jsonl(tmp_path, 12)}",
            output=str(tmp_path / "ckpt"),
            steps=5,
            batch_size=4,
            warmup=0,
            eval_every=2,
            eval_tasks="toy_tasks:CORPUS",
            eval_budgets="1x1,16x64",
            save_every=1,
            dropout=False,
            progress=False,
            **kw,
        )

    calls = []
    original = dev_eval._evaluate

    def counting(encoder, step, *args):
        calls.append((step, encoder.backbone.model.training))
        return original(encoder, step, *args)

    dev_eval._evaluate = counting
    try:
        train(config(run_steps=3))  # evaluates at 0 and 2, stops after step 3
        assert [s for s, _ in calls] == [0, 2]
        rows = dev_eval.read_scores(tmp_path / "ckpt")
        assert [(r["step"], r["task"]) for r in rows] == [(0, "toy-corpus"), (2, "toy-corpus")]
        assert set(rows[0]["scores"]) == {"1x1", "16x64"}
        assert all(0 <= v <= 1 for r in rows for v in r["scores"].values())
        # the evaluation left dropout off, as --no-dropout asked
        assert not any(training for _, training in calls)
        train(config())  # resumes at 3: evaluates at 4 only
        assert [s for s, _ in calls] == [0, 2, 4]
    finally:
        dev_eval._evaluate = original
    rows = dev_eval.read_scores(tmp_path / "ckpt")
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert (tmp_path / "ckpt" / "dev_curve.png").stat().st_size > 1000
    stored = json.loads(
        next((tmp_path / "ckpt" / "dev" / "step-000004").rglob("toy-corpus.json")).read_text()
    )
    assert {b["label"]: b["main_score"] for b in stored["budgets"]} == rows[-1]["scores"]
    # step 0 is the untrained model, and training moved the score
    assert rows[0]["scores"] != rows[-1]["scores"]
    # starting over (a lost state, or --no-resume) drops the earlier run's dev scores: the
    # new run evaluates step 0 again and keeps nothing of the old curve
    train(config(run_steps=1, resume=False))
    assert [r["step"] for r in dev_eval.read_scores(tmp_path / "ckpt")] == [0]
    assert sorted(p.name for p in (tmp_path / "ckpt" / "dev").iterdir()) == ["step-000000"]
