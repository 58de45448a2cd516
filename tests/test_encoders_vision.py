"""Encoders on tiny random Qwen2-VL / Qwen2.5-VL, BERT, CLIP, SigLIP and ColQwen2 checkpoints."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from harness.baselines.backbones import IMAGE_PLACEHOLDER, QwenVLBackbone
from harness.baselines.encoder import gather_rows
from harness.baselines.metaembed import MetaEmbed, load_metaembed
from harness.errors import HarnessError, UsageError
from harness.protocol import Item
from harness.registry import get_model


def png(color, size=(56, 56)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


ITEMS = [
    Item(
        "a",
        f"{IMAGE_PLACEHOLDER} Represent the given image for classification",
        image=png((255, 0, 0)),
    ),
    Item("b", "a short text query about cats"),
    Item(
        "c",
        "a longer query about dogs, cats and birds in a garden",
        image=png((0, 200, 0), (56, 112)),
    ),
    Item("d", "hi", instruction="Find the page."),
]


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl"])
def qwen_metaembed(request, tiny_models):
    return load_metaembed(backbone=str(tiny_models[request.param]), seed=1)


@pytest.mark.slow
def test_metaembed_qwen_shapes_norms_and_slots_last(qwen_metaembed):
    q = qwen_metaembed.encode(ITEMS, role="query", batch_size=4)
    c = qwen_metaembed.encode(ITEMS, role="candidate", batch_size=4)
    assert q.vectors.shape == (4, 16, 64) and c.vectors.shape == (4, 64, 64)
    torch.testing.assert_close(c.vectors.norm(dim=-1), torch.ones(4, 64))
    prepared = qwen_metaembed.backbone.prepare(ITEMS, n_slots=80)
    width = prepared.attention_mask.shape[1]
    assert (
        prepared.slot_positions == torch.arange(width - 80, width)
    ).all()  # left padding: slots last
    assert (prepared.attention_mask[:, -80:] == 1).all()


def test_metaembed_qwen_is_invariant_to_batching_and_padding(qwen_metaembed):
    for role in ("query", "candidate"):
        together = qwen_metaembed.encode(ITEMS, role=role, batch_size=4).vectors
        alone = torch.cat(
            [qwen_metaembed.encode([i], role=role, batch_size=1).vectors for i in ITEMS]
        )
        pairs = torch.cat(
            [
                qwen_metaembed.encode(ITEMS[k : k + 2], role=role, batch_size=2).vectors
                for k in (0, 2)
            ]
        )
        torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(pairs, together, atol=1e-5, rtol=1e-5)


def test_causal_query_slots_alone_equal_the_full_paper_layout(qwen_metaembed):
    model = qwen_metaembed
    prepared = model.backbone.prepare(ITEMS, n_slots=80)
    with torch.no_grad(), model._slots(prepared.slot_positions, torch.arange(80)):
        hidden = model.backbone.hidden_states(prepared)
    both = torch.nn.functional.normalize(
        gather_rows(hidden, prepared.slot_positions[:, :16]).float(), dim=-1
    )
    torch.testing.assert_close(
        both, model.encode(ITEMS, role="query").vectors, atol=1e-5, rtol=1e-5
    )


def test_deterministic_and_checkpoint_round_trip(qwen_metaembed, tmp_path):
    backbone = qwen_metaembed.args["backbone"]
    again = load_metaembed(backbone=backbone, seed=1)
    torch.testing.assert_close(
        again.encode(ITEMS, role="query").vectors,
        qwen_metaembed.encode(ITEMS, role="query").vectors,
    )
    model = MetaEmbed(qwen_metaembed.backbone, projection_dim=24, seed=7, name="rt", args={})
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "metaembed_config.json").read_text())
    assert config["hidden_size"] == 64 and config["projection_dim"] == 24
    loaded = load_metaembed(checkpoint=str(tmp_path / "ckpt"), backbone=backbone)
    torch.testing.assert_close(
        loaded.encode(ITEMS, role="candidate").vectors,
        model.encode(ITEMS, role="candidate").vectors,
    )


def test_checkpoint_from_another_backbone_names_both_sides(tiny_models, tmp_path):
    bert = load_metaembed(backbone=str(tiny_models["bert"]), ocr="none")
    bert.save_pretrained(tmp_path / "bert-ckpt")
    with pytest.raises(HarnessError, match=r"hidden size 32 .* has 64"):
        load_metaembed(
            checkpoint=str(tmp_path / "bert-ckpt"), backbone=str(tiny_models["qwen2_vl"])
        )


def test_image_placeholder_is_placed_or_stripped(tiny_models):
    backbone = QwenVLBackbone(str(tiny_models["qwen2_vl"]), template="raw")
    assert (
        backbone.text_of(ITEMS[0])
        == f"{backbone.VISION} Represent the given image for classification"
    )
    assert backbone.text_of(Item("x", f"{IMAGE_PLACEHOLDER} caption only")) == "caption only"
    assert (
        backbone.text_of(Item("y", "no placeholder", image=b"x"))
        == f"{backbone.VISION}no placeholder"
    )


def test_max_visual_tokens_bounds_the_image_and_tall_pages_still_encode(tiny_models):
    for limit in (4, 16):
        backbone = QwenVLBackbone(str(tiny_models["qwen2_vl"]), max_visual_tokens=limit)
        prepared = backbone.prepare([Item("p", "page", image=png((1, 2, 3), (224, 224)))])
        assert int((prepared.inputs["input_ids"] == backbone.image_token_id).sum()) == limit
    tall = backbone.prepare([Item("t", "", image=png((9, 9, 9), (20, 4000)))])
    assert int(tall.inputs["image_grid_thw"].prod()) > 0


@pytest.mark.parametrize("name", ["single-last", "naive-multi", "colbert"])
def test_every_family_runs_on_qwen(tiny_models, name):
    model = get_model(name, {"backbone": str(tiny_models["qwen2_5_vl"])})
    mv = model.encode(
        ITEMS,
        role="candidate",
        batch_size=2,
        **({"num_vectors": 4} if name == "naive-multi" else {}),
    )
    assert len(mv) == 4 and torch.isfinite(mv.vectors).all()
    norms = mv.vectors.norm(dim=-1)[mv.mask()]
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-5, rtol=1e-5)
    alone = model.encode(
        ITEMS[2:3],
        role="candidate",
        batch_size=1,
        **({"num_vectors": 4} if name == "naive-multi" else {}),
    )
    torch.testing.assert_close(
        alone.vectors[0, : alone.lengths[0]], mv.vectors[2, : mv.lengths[2]], atol=1e-5, rtol=1e-5
    )


def test_metaembed_and_baselines_on_tiny_bert(tiny_models):
    meta = get_model("metaembed", {"backbone": str(tiny_models["bert"]), "ocr": "none"})
    q = meta.encode(ITEMS[1:], role="query")
    assert q.vectors.shape == (3, 16, 32)
    alone = torch.cat([meta.encode([i], role="query").vectors for i in ITEMS[1:]])
    torch.testing.assert_close(alone, q.vectors, atol=1e-5, rtol=1e-5)
    with pytest.raises(UsageError, match="max_visual_tokens"):
        get_model("metaembed", {"backbone": str(tiny_models["bert"]), "max_visual_tokens": 8})


@pytest.mark.parametrize("name", ["colqwen2", "colpali"])
def test_colvision_models_through_transformers_retrieval_classes(tiny_models, name):
    model = get_model(name, {"model": str(tiny_models[name])})
    queries = model.encode([Item("q", "what colour is it?"), Item("q2", "red")], role="query")
    pages = model.encode(
        [Item("p", image=png((255, 0, 0))), Item("p2", image=png((0, 0, 255), (56, 84)))],
        role="candidate",
    )
    assert model.card.family == "colbert" and queries.dim == pages.dim == 16
    assert (queries.lengths > 1).all() and (pages.lengths > 1).all()
    norms = pages.vectors.float().norm(dim=-1)[pages.mask()]
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-4, rtol=1e-4)
    alone = model.encode([Item("p2", image=png((0, 0, 255), (56, 84)))], role="candidate")
    torch.testing.assert_close(
        alone.vectors[0, : alone.lengths[0]],
        pages.vectors[1, : pages.lengths[1]],
        atol=1e-5,
        rtol=1e-5,
    )


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_dual_encoders_embed_text_images_and_both(tiny_models, name):
    model = get_model(name, {"model": str(tiny_models[name])})
    items = [
        Item("t", "a red square"),
        Item("i", image=png((255, 0, 0))),
        Item("b", "a red square", image=png((255, 0, 0))),
    ]
    mv = model.encode(items, role="candidate")
    assert mv.vectors.shape == (3, 1, model.card.dim)
    v = mv.vectors[:, 0].float()
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(3), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        v[2], torch.nn.functional.normalize(v[0] + v[1], dim=0), atol=1e-5, rtol=1e-5
    )


def test_vlm2vec_is_last_token_pooling_on_a_qwen_backbone(tiny_models):
    model = get_model("vlm2vec", {"backbone": str(tiny_models["qwen2_vl"])})
    assert (
        model.card.name == "vlm2vec"
        and model.pooling == "last"
        and model.backbone.template == "raw"
    )
    assert model.encode(ITEMS, role="query").vectors.shape == (4, 1, 64)


@pytest.mark.slow
def test_cli_runs_metaembed_on_a_qwen_backbone_end_to_end(tiny_models, tmp_path):
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": str(tests), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--model",
            "metaembed",
            "--model-args",
            f"backbone={tiny_models['qwen2_vl']}",
            "--tasks",
            "toy_tasks:TASKS",
            "--budgets",
            "1x1,16x64",
            "--output",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--data-dir",
            str(tmp_path / "data"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "out" / "metaembed" / "toy-corpus.json").read_text())
    assert record["model"]["family"] == "metaembed" and record["model"]["dim"] == 64
    assert [b["label"] for b in record["budgets"]] == ["1x1", "16x64"]


def _official_qwen_processor(variant: str, backbone: QwenVLBackbone):
    """transformers' own Qwen2-VL / Qwen2.5-VL processor over the backbone's tokenizer and image
    processor. Its video processor needs torchvision, so it is left out: the type check of that
    one argument is skipped, everything else (image token expansion, tokenization, padding)
    is the library's code."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor

    base = {"qwen2_vl": Qwen2VLProcessor, "qwen2_5_vl": Qwen2_5_VLProcessor}[variant]

    class WithoutVideo(base):
        def check_argument_for_proper_class(self, argument_name, argument):
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    return WithoutVideo(
        image_processor=backbone.image_processor, tokenizer=backbone.tokenizer, video_processor=None
    )


@pytest.mark.parametrize("variant", ["qwen2_vl", "qwen2_5_vl"])
def test_hand_built_qwen_inputs_equal_the_official_processor(tiny_models, variant):
    from harness.baselines.backbones import bound_image

    backbone = QwenVLBackbone(str(tiny_models[variant]), max_visual_tokens=48)
    official = _official_qwen_processor(variant, backbone)
    # Sizes and aspect ratios: square, landscape, portrait, below the minimum, a thin strip
    # (bounded in aspect first, as the harness does for every image), and odd sizes.
    sizes = [(56, 56), (200, 90), (90, 260), (20, 20), (30, 900), (333, 77)]
    items = [
        Item(f"i{n}", f"picture {n} of a page" if n % 2 else "", image=png((n * 40, 90, 200), size))
        for n, size in enumerate(sizes)
    ]
    items.append(Item("t", "a text-only row in the same batch"))
    items.append(Item("both", f"{IMAGE_PLACEHOLDER} caption first", image=png((5, 5, 5), (64, 40))))
    with_image = [i for i in items if i.image is not None]
    ours = backbone.prepare(items).inputs
    theirs = official(
        images=[bound_image(i.open_image()) for i in with_image],
        text=[backbone.text_of(i) for i in items],
        padding=True,
        return_tensors="pt",
    )
    assert int((theirs["input_ids"] == backbone.image_token_id).sum()) > 6 * 4  # expanded
    for key in ("input_ids", "attention_mask", "image_grid_thw", "mm_token_type_ids"):
        assert torch.equal(ours[key].cpu(), theirs[key]), key
    torch.testing.assert_close(ours["pixel_values"].float().cpu(), theirs["pixel_values"].float())
    assert len({tuple(g) for g in theirs["image_grid_thw"].tolist()}) >= 5  # distinct grids


# The released MetaEmbed processors' strings, written out (mm_processing_lastqwen2_5.py: full
# and simple variants; mm_processing_colqwen2_5.py with use_simple_prompt, as the released
# training config scripts/7b_mrl.yaml uses it: ten <|endoftext|> and a newline after a query).
V = "<|vision_start|><|image_pad|><|vision_end|>"
RELEASED = {
    "metaembed": (
        "<|im_start|>user\n{p}{t}Summarize above sentences in one word.<|im_end|><|endoftext|>",
        "<|im_start|>user\n"
        + V
        + "{p}Summarize the above image in one word.<|im_end|><|endoftext|>",
        "<|im_start|>user\n"
        + V
        + "{p}{t}Summarize the above image and sentences in one word.<|im_end|><|endoftext|>",
        "",
    ),
    "metaembed-simple": (
        "<|im_start|>user\n{p}{t}<|im_end|><|endoftext|>",
        "<|im_start|>user\n" + V + "{p}Describe the image.<|im_end|><|endoftext|>",
        "<|im_start|>user\n" + V + "{p}{t}<|im_end|><|endoftext|>",
        "",
    ),
    "metaembed-7b": (
        "<|im_start|>user\n{p}{t}<|im_end|><|endoftext|>",
        "<|im_start|>user\n" + V + "{p}Describe the image.<|im_end|><|endoftext|>",
        "<|im_start|>user\n" + V + "{p}{t}<|im_end|><|endoftext|>",
        "<|endoftext|>" * 10 + "\n",
    ),
}


@pytest.mark.parametrize("template", sorted(RELEASED))
@pytest.mark.parametrize("role", ["query", "candidate"])
def test_released_templates_tokenize_as_the_released_strings(tiny_models, template, role):
    backbone = QwenVLBackbone(str(tiny_models["qwen2_5_vl"]), template=template)
    official = _official_qwen_processor("qwen2_5_vl", backbone)
    text_only, image_only, both, query_suffix = RELEASED[template]
    prefix, suffix = ("Query: ", query_suffix) if role == "query" else ("", "")
    items = [
        Item("t", "a short text query about cats"),
        Item("i", None, image=png((200, 10, 10), (84, 56))),
        # MMEB's layout: the placeholder and its newline lead the text
        Item("b", f"{IMAGE_PLACEHOLDER}\nRepresent the given image.", image=png((1, 2, 3))),
        Item("s", "tiny", image=png((9, 9, 9), (20, 12))),  # below the 28-pixel edge
    ]
    strings = [
        text_only.format(p=prefix, t="a short text query about cats") + suffix,
        image_only.format(p=prefix) + suffix,
        both.format(p=prefix, t="Represent the given image.") + suffix,
        both.format(p=prefix, t="tiny") + suffix,
    ]
    assert [backbone.text_of(i, role) for i in items] == strings
    images = [Image.open(io.BytesIO(i.image)).convert("RGB") for i in items[1:]]
    images[-1] = images[-1].resize((28, 28), Image.BICUBIC)  # the released processors' filter
    theirs = official(images=images, text=strings, padding=True, return_tensors="pt")
    ours = backbone.prepare(items, role=role).inputs
    assert backbone.tokenizer.padding_side == "left"
    for key in ("input_ids", "attention_mask", "image_grid_thw"):
        assert torch.equal(ours[key].cpu(), theirs[key]), key
    torch.testing.assert_close(ours["pixel_values"].float().cpu(), theirs["pixel_values"].float())
