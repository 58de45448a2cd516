"""The shared shell of every backbone-based encoder: batching, no-grad encoding, the model card.

Subclasses implement `embed(items, role)`, a differentiable map from items to padded vectors
(used as it is by training), and say what their card looks like.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from harness.baselines.backbones import Backbone
from harness.budgets import Budget
from harness.errors import HarnessError, UsageError
from harness.multivectors import MultiVectors
from harness.protocol import Item, ModelCard, Role, check_role

DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


ADAPTER_DIR = "adapter"
TRAIN_CONFIG = "train_config.json"  # written by `harness train` beside the checkpoint
BACKBONE_DIR = "backbone"


class BackboneEncoder(torch.nn.Module):
    family = "single"
    nested = True
    config_file = "encoder_config.json"
    weights_file = "encoder.safetensors"

    def __init__(self, backbone: Backbone, *, name: str, args: dict[str, Any]):
        super().__init__()
        self.backbone = backbone
        self.model = backbone.model  # registered as a submodule, so .parameters() sees it
        self.name = name
        self.args = dict(args)
        self.projection: torch.nn.Linear | None = None  # families with a projection set it

    # ---------------------------------------------------------------- to implement
    def embed(
        self, items: Sequence[Item], role: Role, num_vectors: int | None = None
    ) -> MultiVectors:
        raise NotImplementedError

    def budgets(self) -> tuple[Budget, ...]:
        return (Budget(1, 1),)

    def max_vectors(self) -> tuple[int | None, int | None]:
        return 1, 1

    def dim(self) -> int:
        return (
            self.projection.out_features
            if self.projection is not None
            else self.backbone.hidden_size
        )

    def preprocessing(self) -> str:
        return f"{self.family}-v1|{self.backbone.kind}"

    def checkpoint_config(self) -> dict[str, Any]:
        """Family-specific fields of the checkpoint config (what rebuilds this encoder)."""
        return {
            "args": {
                k: v for k, v in self.args.items() if k not in ("backbone", "checkpoint", "adapter")
            }
        }

    def own_parameters(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if not n.startswith("model.")}

    # ---------------------------------------------------------------- checkpoints
    def save_pretrained(self, directory: str | Path, include_backbone: bool = False) -> Path:
        """Own weights as safetensors, LoRA adapters (if any), the backbone itself when it was
        fully fine-tuned, and a small config that the family's loader reads (`checkpoint=DIR`)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {
            n: p.detach().float().cpu().contiguous() for n, p in self.own_parameters().items()
        }
        if tensors:
            save_file(tensors, str(directory / self.weights_file))
        config = {
            "format": 1,
            "family": self.family,
            "name": self.name,
            "backbone": self.backbone.name,
            "backbone_revision": self.backbone.revision,
            "hidden_size": self.backbone.hidden_size,
            "adapter": None,
            **self.checkpoint_config(),
        }
        model = self.backbone.model
        if hasattr(model, "peft_config"):
            model.save_pretrained(str(directory / ADAPTER_DIR))
            config["adapter"] = ADAPTER_DIR
            # Name the backbone as the user did, not by this machine's path; drop the stock card.
            adapter_config = directory / ADAPTER_DIR / "adapter_config.json"
            values = json.loads(adapter_config.read_text())
            values["base_model_name_or_path"] = self.backbone.name
            adapter_config.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
            (directory / ADAPTER_DIR / "README.md").unlink(missing_ok=True)
        if include_backbone:
            if self.backbone.kind != "text":
                raise UsageError(
                    "exporting a fully fine-tuned backbone is supported for text backbones; train Qwen-VL with --tune lora"
                )
            model.save_pretrained(str(directory / BACKBONE_DIR))
            self.backbone.tokenizer.save_pretrained(str(directory / BACKBONE_DIR))
            config["backbone"], config["backbone_revision"] = BACKBONE_DIR, None
        (directory / self.config_file).write_text(json.dumps(config, indent=2) + "\n")
        return directory

    def load_own_weights(self, directory: str | Path) -> None:
        path = Path(directory) / self.weights_file
        own = self.own_parameters()
        if not path.is_file():
            if own:
                raise HarnessError(
                    f"checkpoint {directory} has no {self.weights_file} for {', '.join(own)}"
                )
            return
        tensors = load_file(str(path))
        for name, param in own.items():
            if name not in tensors:
                raise HarnessError(f"checkpoint {directory} has no weights for {name!r}")
            if tuple(tensors[name].shape) != tuple(param.shape):
                raise HarnessError(
                    f"checkpoint {directory} holds {name} of shape {tuple(tensors[name].shape)} but the "
                    f"model expects {tuple(param.shape)}"
                )
            with torch.no_grad():
                param.copy_(tensors[name].to(param.device))

    # ---------------------------------------------------------------- protocol
    def own_weights_digest(self) -> str:
        """A digest of the weights this encoder adds to its backbone (changes the cache key)."""
        digest = hashlib.sha256()
        # LoRA adapters merged into the backbone at load time, and weights read from a
        # released-layout checkpoint, are known by the digest taken when they were read
        for extra in (
            getattr(self.backbone, "adapter_digest", ""),
            getattr(self, "extra_digest", ""),
        ):
            digest.update(str(extra).encode())
        for name, param in sorted(self.named_parameters()):
            if not name.startswith("model.") or "lora_" in name:
                digest.update(name.encode())
                digest.update(param.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    @property
    def card(self) -> ModelCard:
        """Computed once, and again only after the weights changed: every in-place update of a
        parameter (an optimizer step) bumps its version counter, which keys the cached card."""
        key = (
            self.name,
            id(self.backbone.model),
            self.backbone.dtype,
            tuple(p._version for p in self.parameters()),
        )
        if self.__dict__.get("_card_key") != key:
            self.__dict__["_card"] = self._make_card()
            self.__dict__["_card_key"] = key
        return self.__dict__["_card"]

    def _make_card(self) -> ModelCard:
        q, c = self.max_vectors()
        return ModelCard(
            name=self.name,
            family=self.family,
            backbone=self.backbone.name,
            revision=self.backbone.revision,
            n_params=sum(p.numel() for p in self.parameters()),
            dim=self.dim(),
            modalities=self.backbone.modalities,
            budgets=self.budgets(),
            nested=self.nested,
            dtype=DTYPE_NAMES.get(self.backbone.dtype, str(self.backbone.dtype)),
            query_vectors=q,
            candidate_vectors=c,
            preprocessing=f"{self.preprocessing()}|weights={self.own_weights_digest()}",
            args=self.card_args(),
            training=self.training_config(),
            backbone_params=sum(
                p.numel() for n, p in self.backbone.model.named_parameters() if "lora_" not in n
            ),
        )

    def training_config(self) -> dict[str, Any] | None:
        """The `harness train` settings saved beside the checkpoint these weights came from."""
        checkpoint = self.args.get("checkpoint")
        path = Path(checkpoint) / TRAIN_CONFIG if checkpoint else None
        if path is None or not path.is_file():
            return None
        return json.loads(path.read_text())

    def card_args(self) -> dict[str, Any]:
        args = dict(self.args)
        if hasattr(self.backbone, "ocr_engine"):
            args["ocr_engine"] = self.backbone.ocr_engine  # which engine reads page images, if any
        return args

    def encode(
        self,
        items: Sequence[Item],
        *,
        role: Role,
        batch_size: int = 32,
        num_vectors: int | None = None,
    ) -> MultiVectors:
        check_role(role)
        parts = []
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(items), batch_size):
                    mv = self.embed(items[start : start + batch_size], role, num_vectors)
                    parts.append(
                        MultiVectors(mv.vectors.to(self.backbone.dtype).cpu(), mv.lengths.cpu())
                    )
        finally:
            self.train(was_training)
        return (
            MultiVectors.cat(parts)
            if parts
            else MultiVectors(torch.zeros(0, 1, self.dim()), torch.zeros(0, dtype=torch.long))
        )


def read_checkpoint(directory: str | Path, config_file: str) -> dict[str, Any]:
    """A checkpoint's config, with its backbone and adapter paths resolved."""
    path = Path(directory)
    if path.is_file():
        raise HarnessError(
            f"checkpoint {str(path)!r} is a file; a checkpoint is the folder `python -m harness "
            "train` wrote (pass the folder)"
        )
    if not (path / config_file).is_file():
        raise HarnessError(
            f"checkpoint {str(path)!r} is missing {config_file}; train one with `python -m harness train` "
            f"or check the path"
        )
    config = json.loads((path / config_file).read_text())
    if config.get("backbone") and (path / config["backbone"]).is_dir():
        config["backbone"] = str(path / config["backbone"])
    if config.get("adapter"):
        config["adapter"] = str(path / config["adapter"])
    return config


def load_for_checkpoint(
    backbone: str | None, checkpoint: str | None, config_file: str, **kwargs: Any
) -> tuple[Backbone, dict[str, Any]]:
    """The backbone to build an encoder on: the named one, or the one a checkpoint names (its
    saved fine-tuned copy, or the original plus its LoRA adapter)."""
    from harness.baselines.backbones import apply_adapter, load_backbone

    config = read_checkpoint(checkpoint, config_file) if checkpoint is not None else {}
    name = backbone or config.get("backbone")
    if name is None:
        raise UsageError("pass --model-args backbone=HUB_ID_OR_DIR (or checkpoint=DIR)")
    if config and backbone is None and config.get("backbone_revision"):
        kwargs["revision"] = kwargs.get("revision") or config["backbone_revision"]
    bb = load_backbone(name, **kwargs)
    if checkpoint is not None:
        check_hidden_size(config, bb, checkpoint)  # before the adapter, whose error is obscure
    if config.get("adapter"):
        apply_adapter(bb, config["adapter"])
    return bb, config


def build_encoder(
    cls: type[BackboneEncoder],
    backbone: str | None,
    checkpoint: str | None,
    *,
    settings: dict[str, Any],
    saved: tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
    name: str | None,
    default_name: str | Callable[[dict[str, Any]], str],
    suffix: str = "",
    revision: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    options: dict[str, Any],
) -> Any:
    """The one checkpoint-loading path of the backbone encoder families: the backbone (or the
    one a checkpoint names, with its adapter), the family's `settings` (those named in `saved`
    read from the checkpoint when it has them), the card's args, the name, then the family's
    own trained weights. `extra` goes to the family and the args after the common fields."""
    bb, config = load_for_checkpoint(
        backbone,
        checkpoint,
        cls.config_file,
        revision=revision,
        device=device,
        dtype=dtype,
        **options,
    )
    stored = config.get("args", {})
    settings = {k: stored.get(k, v) if k in saved else v for k, v in settings.items()}
    extra = extra or {}
    args = {"backbone": bb.name, **settings, "checkpoint": checkpoint, "dtype": dtype, **extra}
    fallback = default_name if isinstance(default_name, str) else default_name(settings)
    name = (name or config.get("name") or fallback) + suffix
    model = cls(bb, **settings, **extra, name=name, args={**args, **options})
    if checkpoint is not None:
        model.load_own_weights(checkpoint)
    return model


def check_hidden_size(config: dict[str, Any], backbone: Backbone, checkpoint: str | Path) -> None:
    if config.get("hidden_size") not in (None, backbone.hidden_size):
        raise HarnessError(
            f"checkpoint {checkpoint} was trained on hidden size {config['hidden_size']} "
            f"({config.get('backbone')}) but backbone {backbone.name} has {backbone.hidden_size}"
        )


def gather_rows(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """hidden [B, T, H] at positions [B, S] -> [B, S, H]."""
    return hidden[torch.arange(hidden.shape[0], device=hidden.device)[:, None], positions]


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Column of each row's last real token, for left or right padding."""
    width = attention_mask.shape[1]
    columns = torch.arange(width, device=attention_mask.device).expand_as(attention_mask)
    return torch.where(attention_mask.bool(), columns, -1).amax(dim=1)
