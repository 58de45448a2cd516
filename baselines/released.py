"""MetaEmbed checkpoints in the layout of the released code (github.com/facebookresearch/MetaEmbed,
`LastQwen2_5` in colpali_engine/models/qwen2_5/lastqwen2_5/), read and written.

The released model is a Qwen2.5-VL conditional-generation model with two modules of its own:
`prompt_embed_tokens`, an embedding table of the query then the candidate meta tokens, and an
optional projection `custom_text_proj` (a linear layer with bias; `dim=-1` means none). Training
saves either the full weights (`model*.safetensors` beside `config.json`) or, with LoRA, a peft
adapter folder (`adapter_config.json` naming the base model, `adapter_model.safetensors` with the
LoRA matrices and the two modules saved whole, `modules_to_save`). Its backbone keys follow the
transformers version it ran under: `model.layers.*` and `visual.*` (4.51) or
`model.language_model.*` and `model.visual.*` (4.55); both are read.

Loading merges the LoRA matrices into the backbone's weights (W + alpha / r * B A), so a loaded
checkpoint encodes at the backbone's own speed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.errors import HarnessError, UsageError

TABLE = "prompt_embed_tokens.weight"
PROJECTION = "custom_text_proj"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
# the LoRA targets of the released config (scripts/7b_mrl.yaml), as peft matches them
RELEASED_TARGETS = r"(.*(model).*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj).*$)"
LAYOUTS = ("4.55", "4.51")


@dataclass
class Released:
    """What a released-layout folder holds, its backbone keys already in this project's names."""

    kind: str  # "full" | "adapter"
    path: Path
    base: str | None  # the base model an adapter applies to (as its config names it)
    table: torch.Tensor  # [query + candidate slots, hidden]
    projection: tuple[torch.Tensor, torch.Tensor | None] | None  # (weight, bias)
    lora: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = field(default_factory=dict)
    digest: str = ""  # of the files read, for the embedding cache's key


def layout_of(directory: str | Path) -> str:
    """`own` (metaembed_config.json), `adapter` or `full` (released), or an error naming what a
    checkpoint folder must hold."""
    path = Path(directory)
    if (path / "metaembed_config.json").is_file():
        return "own"
    if (path / ADAPTER_CONFIG).is_file():
        return "adapter"
    if (path / "config.json").is_file() and _weight_files(path):
        return "full"
    found = sorted(p.name for p in path.iterdir())[:8] if path.is_dir() else None
    what = (
        "a file; a checkpoint is the folder `python -m harness train` wrote"
        if path.is_file()
        else "missing"
    )
    raise HarnessError(
        f"checkpoint {str(path)!r} is "
        + (f"a folder holding {', '.join(found) or 'nothing'}" if found is not None else what)
        + ": expected this project's metaembed_config.json, or the released code's layout "
        "(config.json with model*.safetensors holding prompt_embed_tokens.weight, or a peft "
        "adapter folder with adapter_config.json); train one with `python -m harness train`"
    )


def _weight_files(path: Path) -> list[Path]:
    return sorted(path.glob("model*.safetensors"))


def read_released(directory: str | Path) -> Released:
    """The released checkpoint's meta-token table, projection and LoRA matrices."""
    from safetensors import safe_open

    path = Path(directory)
    kind = layout_of(path)
    if kind == "own":
        raise UsageError(
            f"{path} is a checkpoint of this project's own layout, not the released one"
        )
    digest = hashlib.sha256()
    if kind == "full":
        files, base, adapter = _weight_files(path), None, {}
    else:
        adapter = json.loads((path / ADAPTER_CONFIG).read_text())
        _check_adapter_config(adapter, path)
        files, base = [path / ADAPTER_WEIGHTS], adapter.get("base_model_name_or_path")
        if not files[0].is_file():
            raise HarnessError(
                f"adapter {path} has no {ADAPTER_WEIGHTS} (older .bin adapters are not read)"
            )
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                name = key.removeprefix(PEFT_PREFIX) if kind == "adapter" else key
                if kind == "full" and not name.startswith((TABLE.split(".")[0], PROJECTION)):
                    continue  # backbone weights: transformers loads them from the folder
                tensors[name] = handle.get_tensor(key)
                digest.update(key.encode())
                digest.update(tensors[name].float().numpy().tobytes())
    if TABLE not in tensors:
        raise HarnessError(
            f"checkpoint {path} has no {TABLE} (the released MetaEmbed meta-token table); "
            "it is not a MetaEmbed checkpoint"
        )
    projection = None
    if f"{PROJECTION}.weight" in tensors:
        projection = (tensors[f"{PROJECTION}.weight"], tensors.get(f"{PROJECTION}.bias"))
    lora = _lora_pairs(tensors, adapter, path) if kind == "adapter" else {}
    return Released(kind, path, base, tensors[TABLE], projection, lora, digest.hexdigest()[:16])


def _check_adapter_config(config: dict[str, Any], path: Path) -> None:
    if config.get("peft_type", "LORA") != "LORA":
        raise HarnessError(
            f"adapter {path} is a {config.get('peft_type')} adapter; only LoRA is read"
        )
    for key in ("use_dora", "lora_bias"):
        if config.get(key):
            raise HarnessError(f"adapter {path} uses {key}, which this loader does not merge")
    for key in ("rank_pattern", "alpha_pattern"):
        if config.get(key):
            raise HarnessError(
                f"adapter {path} sets {key} (per-module ranks or alphas), which this loader does not merge"
            )


def _lora_pairs(
    tensors: dict[str, torch.Tensor], config: dict[str, Any], path: Path
) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """module (this project's name) -> (A [r, in], B [out, r], scale)."""
    pairs = {}
    alpha = float(config.get("lora_alpha", 8))
    for key in tensors:
        if not key.endswith(".lora_A.weight"):
            if "lora_" in key and not key.endswith(".lora_B.weight"):
                raise HarnessError(
                    f"adapter {path} holds {key}, a LoRA tensor kind this loader does not merge"
                )
            continue
        module = key[: -len(".lora_A.weight")]
        a, b = tensors[key], tensors.get(f"{module}.lora_B.weight")
        if b is None:
            raise HarnessError(f"adapter {path} has {key} without its lora_B")
        rank = a.shape[0]
        scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
        pairs[backbone_name(module)] = (a, b, scale)
    return pairs


def backbone_name(key: str) -> str | None:
    """A released backbone key (either transformers layout) as this project's Qwen-VL backbone
    names it (`language_model.*`, `visual.*`); None for keys it does not hold (`lm_head`, the
    4.55 class's second reference to the token embeddings)."""
    for old, new in (
        ("model.language_model.", "language_model."),
        ("model.visual.", "visual."),
        ("visual.", "visual."),
        ("model.", "language_model."),
    ):
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def released_key(name: str, layout: str) -> str:
    """This project's backbone name in the released class's keys for `layout` (4.51 or 4.55)."""
    if layout not in LAYOUTS:
        raise UsageError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    lm, vis = (
        ("model.", "visual.") if layout == "4.51" else ("model.language_model.", "model.visual.")
    )
    if name.startswith("language_model."):
        return lm + name[len("language_model.") :]
    if name.startswith("visual."):
        return vis + name[len("visual.") :]
    raise UsageError(f"{name} is not a Qwen-VL backbone weight")


def merge_lora(
    model: torch.nn.Module, lora: dict[str, tuple[torch.Tensor, torch.Tensor, float]], path
) -> None:
    """W += scale * B @ A for each LoRA pair, in float32, into the backbone's linear layers."""
    modules = dict(model.named_modules())
    for name, (a, b, scale) in lora.items():
        module = modules.get(name) if name else None
        if not isinstance(module, torch.nn.Linear):
            raise HarnessError(
                f"adapter {path} has LoRA weights for {name!r}, which is not a linear layer of "
                f"this backbone; the adapter was trained on another model"
            )
        if tuple(module.weight.shape) != (b.shape[0], a.shape[1]):
            raise HarnessError(
                f"adapter {path}: LoRA for {name} is {b.shape[0]}x{a.shape[1]} but the layer is "
                f"{tuple(module.weight.shape)}; the adapter was trained on another model size"
            )
        with torch.no_grad():
            delta = scale * (b.float() @ a.float())
            module.weight.copy_(
                (module.weight.float() + delta.to(module.weight.device)).to(module.weight.dtype)
            )


LM_TARGETS = {  # the language model's projections, as this project's LoRA targets them
    "4.55": r"model\.language_model\.layers\.\d+\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
    "4.51": r"model\.layers\.\d+\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
}


def export_released(
    encoder, output: str | Path, weights: str = "full", layout: str = "4.55"
) -> Path:
    """Write `encoder` (MetaEmbed on a Qwen-VL backbone) as the released code saves a trained
    `LastQwen2_5`: full weights (`weights="full"`: config.json, model.safetensors, tokenizer and
    image processor files) or a peft adapter folder (`"adapter"`, for a model trained with LoRA),
    with backbone keys of the transformers `layout` the released code runs under (4.55 or 4.51)."""
    from safetensors.torch import save_file

    backbone = encoder.backbone
    if backbone.kind != "qwen-vl":
        raise UsageError(
            f"the released code runs Qwen2.5-VL backbones; {encoder.card.name} is built on "
            f"{backbone.name} ({backbone.kind}), which it cannot load"
        )
    if weights not in ("full", "adapter"):
        raise UsageError(f"weights must be full or adapter, got {weights!r}")
    released_key("language_model.x", layout)  # checks the layout name
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; name a new folder for the converted checkpoint")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} is not empty; choose a new folder for the converted checkpoint")
    out.mkdir(parents=True, exist_ok=True)
    own = {TABLE: encoder.meta_tokens.detach().float().cpu().contiguous()}
    if encoder.projection is not None:
        own[f"{PROJECTION}.weight"] = encoder.projection.weight.detach().float().cpu().contiguous()
        bias = encoder.projection.bias
        own[f"{PROJECTION}.bias"] = (
            bias.detach().float().cpu().contiguous()
            if bias is not None
            else torch.zeros(encoder.projection.out_features)  # this project's has none
        )
    model = backbone.model
    if weights == "adapter":
        _write_adapter(encoder, model, own, out, layout)
    else:
        if hasattr(model, "merge_and_unload"):
            raise UsageError(
                "this model still carries its LoRA adapter as modules; load it for inference "
                "(adapters merged) to write full weights"
            )
        tensors = {}
        for name, tensor in model.state_dict().items():
            tensors[released_key(name, layout)] = tensor.detach().cpu().contiguous()
        embed = tensors[released_key("language_model.embed_tokens.weight", layout)]
        tensors["lm_head.weight"] = _lm_head(backbone, embed)
        if layout == "4.55":  # the 4.55 class also registers the token embeddings at the top
            tensors["embed_tokens.weight"] = embed.clone()
        tensors.update(own)
        save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        config["architectures"] = ["LastQwen2_5"]
        (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        backbone.tokenizer.save_pretrained(str(out))
        backbone.image_processor.save_pretrained(str(out))
    (out / "metaembed_released.json").write_text(
        json.dumps(
            {
                "written_by": "metaembed-harness",
                "weights": weights,
                "transformers_layout": layout,
                "LastQwen2_5": {
                    "num_query_prompt_tokens": encoder.query_tokens,
                    "num_doc_prompt_tokens": encoder.candidate_tokens,
                    "dim": encoder.projection.out_features
                    if encoder.projection is not None
                    else -1,
                },
                "template": getattr(backbone, "template", None),
            },
            indent=2,
        )
        + "\n"
    )
    return out


def _lm_head(backbone, embed: torch.Tensor) -> torch.Tensor:
    """The language-model head the released class carries (unused for embeddings): the tied
    token embeddings, or the base model's own head read from its files."""
    from safetensors import safe_open

    from harness.baselines.backbones import resolve_model_path

    if getattr(backbone.model.config, "tie_word_embeddings", False):
        return embed.clone()
    for file in sorted(Path(resolve_model_path(backbone.name)).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            if "lm_head.weight" in handle.keys():  # noqa: SIM118 (a safetensors handle)
                return handle.get_tensor("lm_head.weight")
    raise HarnessError(
        f"the base model {backbone.name} has untied embeddings and no lm_head.weight in its "
        "safetensors files; the released class needs one"
    )


def _write_adapter(encoder, model, own: dict[str, torch.Tensor], out: Path, layout: str) -> None:
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    if not hasattr(model, "peft_config"):
        raise UsageError(
            f"{encoder.card.name} carries no LoRA adapter (trained with --tune full or frozen, or "
            "loaded with its adapter merged); write full weights instead"
        )
    lora = model.peft_config["default"]
    tensors = {}
    for key, tensor in get_peft_model_state_dict(model, save_embedding_layers=False).items():
        name = key.removeprefix(PEFT_PREFIX)
        module, _, kind = name.rpartition(".lora_")
        tensors[PEFT_PREFIX + released_key(module, layout) + ".lora_" + kind] = (
            tensor.detach().float().cpu().contiguous()
        )
    tensors.update({PEFT_PREFIX + k: v for k, v in own.items()})
    save_file(tensors, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "task_type": "FEATURE_EXTRACTION",
        "base_model_name_or_path": encoder.backbone.name,
        "r": lora.r,
        "lora_alpha": lora.lora_alpha,
        "lora_dropout": lora.lora_dropout,
        "target_modules": LM_TARGETS[layout],
        "modules_to_save": ["prompt_embed_tokens", "custom_text_proj"],
        "bias": "none",
        "use_rslora": bool(getattr(lora, "use_rslora", False)),
        "use_dora": False,
        "fan_in_fan_out": False,
        "inference_mode": True,
    }
    (out / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
