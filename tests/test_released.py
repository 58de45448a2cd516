"""MetaEmbed checkpoints in the released code's layout, against a reference written here from
the released forward's description (colpali_engine LastQwen2_5): input ids plus one appended
position per meta token (query slots then candidate slots), the appended embeddings taken from
`prompt_embed_tokens`, image features scattered into the image pads, the rope index over the
extended mask, last-layer states at the slots, `custom_text_proj` with its bias, L2 norm.

The released-layout folders are written by transformers and peft themselves from a model class
defined here with the released module names, so the files are what the released code writes.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from test_encoders_vision import RELEASED, _official_qwen_processor, png

from harness.baselines.backbones import QwenVLBackbone
from harness.baselines.released import RELEASED_TARGETS
from harness.errors import HarnessError, UsageError
from harness.protocol import Item
from harness.registry import get_model

Q, C, DIM = 3, 5, 24  # small slot counts keep the tests fast; the layout is the same as 16 + 64
ITEMS = [
    Item("t", "a short text about cats"),
    Item("i", None, image=png((200, 10, 10), (84, 56))),
    Item("b", "<|image_1|>\nRepresent the given image.", image=png((10, 120, 30))),
]


def released_class():
    from transformers import Qwen2_5_VLForConditionalGeneration
    from transformers.conversion_mapping import (
        get_checkpoint_conversion_mapping,
        register_checkpoint_conversion_mapping,
    )

    class LastQwen2_5(Qwen2_5_VLForConditionalGeneration):  # noqa: N801 (the released name)
        """The released model's parameters: the backbone, `prompt_embed_tokens` (query then
        candidate meta tokens) and `custom_text_proj` (with bias) unless dim is -1."""

        def __init__(self, config, num_query=Q, num_doc=C, dim=DIM):
            super().__init__(config)
            hidden = config.text_config.hidden_size
            self.num_query, self.num_doc = num_query, num_doc
            self.prompt_embed_tokens = torch.nn.Embedding(num_query + num_doc, hidden)
            self.custom_text_proj = torch.nn.Linear(hidden, dim) if dim != -1 else None

    # A subclass reads its parent's checkpoints as the parent does (transformers 5 looks the
    # key conversion up by class name; 4.x subclasses inherit it as a class attribute).
    parent = get_checkpoint_conversion_mapping("Qwen2_5_VLForConditionalGeneration")
    if parent is not None:
        register_checkpoint_conversion_mapping("LastQwen2_5", parent, overwrite=True)
    return LastQwen2_5


def _as_layout(key: str, layout: str) -> str:
    """A backbone key in the transformers 4.55 (`model.language_model.*`, `model.visual.*`) or
    4.51 (`model.*`, `visual.*`) naming, whichever it was saved in."""
    if key.startswith("model.language_model."):
        key = "model." + key[len("model.language_model.") :]
    elif key.startswith("model.visual."):
        key = key[len("model.") :]
    if layout == "4.51":
        return key
    if key.startswith("visual."):
        return "model." + key
    if key.startswith("model."):
        return "model.language_model." + key[len("model.") :]
    return key


def reference_vectors(model, template: str, items, role: str) -> torch.Tensor:
    """The released forward, step by step, on the released processor's strings."""
    backbone = QwenVLBackbone(str(BASE), template=template)
    processor = _official_qwen_processor("qwen2_5_vl", backbone)
    text_only, image_only, both, query_suffix = RELEASED[template]
    prefix, suffix = ("Query: ", query_suffix) if role == "query" else ("", "")
    strings, images = [], []
    for item in items:
        text = None if item.text is None else item.text.replace("<|image_1|>\n", "")
        if item.image is None:
            strings.append(text_only.format(p=prefix, t=text) + suffix)
        else:
            images.append(Image.open(io.BytesIO(item.image)).convert("RGB"))
            pattern = image_only if text is None else both
            strings.append(pattern.format(p=prefix, t=text) + suffix)
    batch = processor(text=strings, images=images or None, padding=True, return_tensors="pt")
    return released_forward(model, batch, role)


def released_forward(model, batch, role: str) -> torch.Tensor:
    n = model.num_query + model.num_doc
    rows = batch["input_ids"].shape[0]
    ids = torch.cat([batch["input_ids"].cpu(), torch.ones(rows, n, dtype=torch.long)], 1)
    mask = torch.cat([batch["attention_mask"].cpu(), torch.ones(rows, n, dtype=torch.long)], 1)
    inner = model.model
    with torch.no_grad():
        embeds = inner.get_input_embeddings()(ids)
        table = model.prompt_embed_tokens(torch.arange(n))
        embeds[:, -n:] = table.unsqueeze(0).expand(rows, -1, -1)
        if batch.get("pixel_values") is not None:
            grid = batch["image_grid_thw"].cpu()
            features = inner.get_image_features(batch["pixel_values"].cpu(), grid).pooler_output
            where = (ids == model.config.image_token_id).unsqueeze(-1).expand_as(embeds)
            embeds = embeds.masked_scatter(where, torch.cat(list(features)).to(embeds.dtype))
            positions, _ = inner.get_rope_index(
                ids,
                mm_token_type_ids=(ids == model.config.image_token_id).int(),
                image_grid_thw=grid,
                attention_mask=mask,
            )
        else:  # text only: 1-D positions from each row's first token, on every rotary axis
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
            positions = positions.unsqueeze(0).expand(3, -1, -1)
        out = inner(inputs_embeds=embeds, attention_mask=mask, position_ids=positions)
        states = out.last_hidden_state
        slots = states[:, -n : -model.num_doc] if role == "query" else states[:, -model.num_doc :]
        if model.custom_text_proj is not None:
            slots = model.custom_text_proj(slots)
        return slots / slots.norm(dim=-1, keepdim=True)


BASE: Path


@pytest.fixture(scope="module")
def base(tiny_models):
    global BASE
    BASE = tiny_models["qwen2_5_vl"]
    return BASE


def _randomised(model, seed: int):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.prompt_embed_tokens.weight.copy_(
            torch.randn(model.prompt_embed_tokens.weight.shape, generator=g)
        )
        if model.custom_text_proj is not None:
            model.custom_text_proj.weight.normal_(0, 0.2, generator=g)
            model.custom_text_proj.bias.normal_(0, 0.5, generator=g)  # a bias that matters
    return model


@pytest.fixture(scope="module")
def released_full(base, tmp_path_factory):
    """Full weights as transformers saves the released class, and the same file renamed to
    the transformers 4.51 layout (`model.layers.*`, `visual.*`)."""
    from transformers import AutoImageProcessor, AutoTokenizer

    model, info = released_class().from_pretrained(str(base), output_loading_info=True)
    assert not [k for k in info["missing_keys"] if "prompt" not in k and "custom" not in k]
    model = _randomised(model, 0).eval()
    saved = tmp_path_factory.mktemp("saved")
    model.save_pretrained(str(saved))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(saved))
    AutoImageProcessor.from_pretrained(str(base)).save_pretrained(str(saved))
    tensors = {}
    for file in saved.glob("model*.safetensors"):
        tensors.update(load_file(str(file)))
    folders = {}
    for layout in ("4.55", "4.51"):
        folder = tmp_path_factory.mktemp(f"released-full-{layout}")
        for file in saved.iterdir():
            if file.suffix != ".safetensors" and file.is_file():
                (folder / file.name).write_bytes(file.read_bytes())
        renamed = {_as_layout(k, layout): v for k, v in tensors.items()}
        save_file(renamed, str(folder / "model.safetensors"), metadata={"format": "pt"})
        folders[layout] = folder
    assert any(
        k.startswith("model.layers.") for k in load_file(str(folders["4.51"] / "model.safetensors"))
    )
    return model, folders["4.55"], folders["4.51"]


@pytest.fixture(scope="module")
def released_adapter(base, tmp_path_factory):
    """A peft adapter folder saved from the released class with the released LoRA config
    (the released target regex, which under this transformers also reaches the vision MLPs)."""
    from peft import LoraConfig, get_peft_model

    model, info = released_class().from_pretrained(str(base), output_loading_info=True)
    assert not [k for k in info["missing_keys"] if "prompt" not in k and "custom" not in k]
    model = _randomised(model, 1)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=RELEASED_TARGETS,
        modules_to_save=["prompt_embed_tokens", "custom_text_proj"],
        init_lora_weights="gaussian",
    )
    peft_model = get_peft_model(model, config)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # non-zero, so the adapter changes the vectors
                param.copy_(torch.randn(param.shape, generator=g) * 0.05)
            if "modules_to_save" in name:
                param.add_(torch.randn(param.shape, generator=g) * 0.1)
    out = tmp_path_factory.mktemp("released-adapter")
    peft_model.save_pretrained(str(out))
    saved = load_file(str(out / "adapter_model.safetensors"))
    assert "base_model.model.prompt_embed_tokens.weight" in saved
    assert any("visual" in k and "lora_A" in k for k in saved)  # vision MLPs too
    return peft_model.eval(), out


@pytest.mark.parametrize("role", ["query", "candidate"])
@pytest.mark.parametrize("layout", ["4.55", "4.51"])
def test_released_full_weights_match_the_reference(released_full, role, layout):
    model, new, old = released_full
    folder = new if layout == "4.55" else old
    ours = get_model(
        "metaembed", {"checkpoint": str(folder), "query_tokens": Q, "candidate_tokens": C}
    )
    assert ours.card.args["checkpoint_format"] == "released-full"
    assert ours.card.args["template"] == "metaembed-7b" and ours.card.dim == DIM
    expected = reference_vectors(model, "metaembed-7b", ITEMS, role)
    got = ours.encode(ITEMS, role=role, batch_size=3).vectors
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("template", ["metaembed", "metaembed-simple"])
def test_the_other_released_templates_match_the_reference_too(released_full, template):
    model, folder, _ = released_full
    ours = get_model(
        "metaembed",
        {"checkpoint": str(folder), "query_tokens": Q, "candidate_tokens": C, "template": template},
    )
    for role in ("query", "candidate"):
        expected = reference_vectors(model, template, ITEMS, role)
        assert (ours.encode(ITEMS, role=role).vectors - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("role", ["query", "candidate"])
def test_released_adapter_is_merged_and_matches_the_reference(released_adapter, role):
    peft_model, folder = released_adapter
    ours = get_model("metaembed", {"checkpoint": str(folder), "candidate_tokens": C})
    assert ours.card.args["checkpoint_format"] == "released-adapter"
    assert not any("lora" in n for n, _ in ours.named_parameters())  # merged, plain layers
    expected = reference_vectors(peft_model.base_model.model, "metaembed-7b", ITEMS, role)
    got = ours.encode(ITEMS, role=role, batch_size=2).vectors
    assert (got - expected).abs().max() <= 1e-5


def test_slot_counts_come_from_the_table_and_must_add_up(released_full):
    _, folder, _ = released_full
    with pytest.raises(UsageError, match="has 8 meta tokens; pass --model-args query_tokens"):
        get_model("metaembed", {"checkpoint": str(folder)})
    with pytest.raises(UsageError, match="add up to 9"):
        get_model(
            "metaembed", {"checkpoint": str(folder), "query_tokens": 4, "candidate_tokens": 5}
        )
    model = get_model("metaembed", {"checkpoint": str(folder), "query_tokens": 2})
    assert (model.query_tokens, model.candidate_tokens) == (2, 6)


def test_an_adapter_whose_base_is_elsewhere_says_to_pass_backbone(released_adapter, tmp_path, base):
    _, folder = released_adapter
    moved = tmp_path / "moved"
    moved.mkdir()
    for file in folder.iterdir():
        (moved / file.name).write_bytes(file.read_bytes())
    config = json.loads((moved / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "./models/colqwen2.5-7B-base"  # the author's machine
    (moved / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(HarnessError, match="pass --model-args backbone="):
        get_model("metaembed", {"checkpoint": str(moved), "candidate_tokens": C})
    model = get_model(
        "metaembed", {"checkpoint": str(moved), "candidate_tokens": C, "backbone": str(base)}
    )
    assert model.card.args["checkpoint_format"] == "released-adapter"


def test_a_folder_of_neither_layout_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(HarnessError, match="holding notes.txt: expected this project's"):
        get_model("metaembed", {"checkpoint": str(tmp_path)})


@pytest.fixture(scope="module")
def own_checkpoint(base, tmp_path_factory):
    """A checkpoint of this project's layout with a trained-looking LoRA adapter and projection."""
    from peft import LoraConfig, get_peft_model

    from harness.baselines.backbones import load_backbone
    from harness.baselines.metaembed import MetaEmbed
    from harness.training.loop import LORA_TARGETS

    backbone = load_backbone(str(base))
    backbone.model = get_peft_model(
        backbone.model, LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS["qwen-vl"])
    )
    model = MetaEmbed(
        backbone,
        query_tokens=Q,
        candidate_tokens=C,
        projection_dim=DIM,
        seed=3,
        name="own",
        args={},
    )
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for name, param in backbone.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=g) * 0.05)
    out = tmp_path_factory.mktemp("own")
    model.save_pretrained(out)
    return out


@pytest.mark.parametrize("weights", ["full", "adapter"])
@pytest.mark.slow
def test_convert_writes_what_the_released_class_loads(own_checkpoint, base, tmp_path, weights):
    from peft import PeftModel

    out = tmp_path / weights
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "convert",
            "--model-args",
            f"checkpoint={own_checkpoint}",
            "--output",
            str(out),
            "--weights",
            weights,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ours = get_model("metaembed", {"checkpoint": str(own_checkpoint)})
    cls = released_class()
    if weights == "full":
        model, info = cls.from_pretrained(str(out), output_loading_info=True)
        assert not info["missing_keys"], info["missing_keys"]
    else:
        released = cls.from_pretrained(str(base))
        peft_model = PeftModel.from_pretrained(released, str(out))
        model = peft_model.base_model.model
        lora = [n for n, _ in model.named_parameters() if "lora_A" in n]
        assert len(lora) == 7  # every projection of the tiny model's one layer
    model.eval()
    for role in ("query", "candidate"):
        # the converted weights through the released forward, on the inputs the checkpoint's
        # own template builds (its prompts are this project's chat template)
        expected = released_forward(model, ours.backbone.prepare(ITEMS, role=role).inputs, role)
        got = ours.encode(ITEMS, role=role).vectors
        assert (got - expected).abs().max() <= 1e-5, role
    # and back: the converted folder loads through the harness as a released checkpoint
    back = get_model("metaembed", {"checkpoint": str(out), "query_tokens": Q, "template": "chat"})
    assert back.card.args["checkpoint_format"] == f"released-{weights}"
    torch.testing.assert_close(
        back.encode(ITEMS, role="candidate").vectors,
        ours.encode(ITEMS, role="candidate").vectors,
        atol=1e-5,
        rtol=1e-5,
    )
