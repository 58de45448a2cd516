"""MetaEmbed: learnable Meta Tokens appended to a backbone's input; their last-layer states,
L2-normalised, are the multi-vector embedding (arXiv 2509.18095).

Layout as in the paper: the input, then the query slots, then the candidate slots. A query's
embedding is the states at the query slots, a candidate's at the candidate slots. The slots are
placeholder tokens whose input embeddings are overwritten by the meta-token table, so images
and positions work as for any text token.

Information flow (`attention=`): on a causal backbone the layout alone means the input never
sees a slot, query slots never see candidate slots and slot i sees only the slots before it.
A bidirectional backbone (BERT-style) gets the same flow by default through a 4-D attention
mask (`attention=paper`): text attends to text only, each slot to the text and to the slots up
to itself. `attention=full` lets every token attend to every token (the released code's
`use_bidirectional_attention` counterpart, and how checkpoints of this project's format 1
were trained). Whenever query slots cannot see candidate slots, queries are encoded with the
query slots alone (the same vectors, less compute).

Matryoshka (MMR) training makes every prefix useful, so budgets are prefixes (nested).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from harness.baselines.backbones import Backbone
from harness.baselines.encoder import (
    BackboneEncoder,
    gather_rows,
    load_for_checkpoint,
    read_checkpoint,
)
from harness.baselines.released import layout_of
from harness.budgets import METAEMBED_BUDGETS, Budget
from harness.errors import HarnessError, UsageError
from harness.multivectors import MultiVectors
from harness.protocol import Item, Role

log = logging.getLogger(__name__)

ATTENTION = ("paper", "full")
# how a fresh meta-token table starts (`meta_init=`): random at the embedding table's scale, or
# the backbone's [MASK] or [CLS] embedding plus small noise
META_INITS = ("random", "mask", "cls")


class MetaEmbed(BackboneEncoder):
    family = "metaembed"
    nested = True
    config_file = "metaembed_config.json"
    weights_file = "metaembed.safetensors"

    def __init__(
        self,
        backbone: Backbone,
        *,
        query_tokens: int = 16,
        candidate_tokens: int = 64,
        projection_dim: int | None = None,
        projection_bias: bool = False,
        name: str = "metaembed",
        seed: int = 0,
        attention: str = "paper",
        meta_init: str = "random",
        args: dict[str, Any] | None = None,
    ):
        super().__init__(backbone, name=name, args=args or {})
        if meta_init not in META_INITS:
            raise UsageError(
                f"meta_init= must be one of {', '.join(META_INITS)}, got {meta_init!r}"
            )
        if query_tokens < 1 or candidate_tokens < 1:
            raise UsageError("query_tokens and candidate_tokens must be positive")
        if attention not in ATTENTION:
            raise UsageError(f"attention= must be one of {', '.join(ATTENTION)}, got {attention!r}")
        if attention == "full" and backbone.causal:
            raise UsageError(
                f"attention=full applies to bidirectional backbones; {backbone.name} is causal, "
                "where the layout alone gives the paper's flow (use attention=paper)"
            )
        self.attention = attention
        self.query_tokens, self.candidate_tokens = int(query_tokens), int(candidate_tokens)
        hidden = backbone.hidden_size
        table = backbone.input_embeddings().weight.detach().float()
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(query_tokens + candidate_tokens, hidden, generator=generator)
        init = noise * float(table.std())
        if meta_init != "random":
            # a token the backbone already reads as "fill me in" ([MASK]) or "the sequence"
            # ([CLS]), each slot told apart by a tenth of the table's scale in noise
            token = getattr(backbone.tokenizer, f"{meta_init}_token_id", None)
            if token is None:
                raise UsageError(f"meta_init={meta_init}: {backbone.name} has no {meta_init} token")
            init = table[token].unsqueeze(0) + 0.1 * init
        self.meta_init = meta_init
        self.meta_tokens = torch.nn.Parameter(init.to(backbone.device))
        self.projection = None
        if projection_dim:
            # the released `custom_text_proj` has a bias; this project's own projection does not
            self.projection = torch.nn.Linear(
                hidden, int(projection_dim), bias=bool(projection_bias)
            ).to(backbone.device)
            with torch.no_grad():
                self.projection.weight.copy_(
                    torch.randn(int(projection_dim), hidden, generator=generator) / hidden**0.5
                )
                if self.projection.bias is not None:
                    self.projection.bias.zero_()
        self._inject: tuple[torch.Tensor, torch.Tensor] | None = None
        self._hook = backbone.input_embeddings().register_forward_hook(self._overwrite_slots)

    # ---------------------------------------------------------------- slots
    def _overwrite_slots(self, module, args, output):
        if self._inject is None:
            return output
        positions, slot_ids = self._inject
        if output.dim() != 3 or output.shape[0] != positions.shape[0]:
            return output
        rows = torch.arange(output.shape[0], device=output.device)[:, None]
        values = (
            self.meta_tokens[slot_ids]
            .to(output.dtype)
            .unsqueeze(0)
            .expand(positions.shape[0], -1, -1)
        )
        output = output.clone()
        output[rows, positions] = values
        return output

    @contextmanager
    def _slots(self, positions: torch.Tensor, slot_ids: torch.Tensor):
        self._inject = (positions, slot_ids)
        try:
            yield
        finally:
            self._inject = None

    def _layout(self, role: Role) -> tuple[torch.Tensor, slice]:
        """Slot ids appended for this role, and which of them carry the embedding."""
        q, c = self.query_tokens, self.candidate_tokens
        if role == "query" and self.attention == "paper":
            return torch.arange(q), slice(0, q)
        return torch.arange(q + c), (slice(0, q) if role == "query" else slice(q, q + c))

    def _paper_mask(self, prepared) -> torch.Tensor:
        """Additive [B, 1, T, T] mask of the causal layout's flow on a bidirectional backbone:
        a token attends to the real text tokens, and a slot also to the slots up to itself."""
        mask, slots = prepared.attention_mask.bool(), prepared.slot_positions
        batch, width = mask.shape
        rows = torch.arange(batch, device=mask.device)[:, None]
        order = torch.full((batch, width), -1, dtype=torch.long, device=mask.device)
        order[rows, slots] = torch.arange(slots.shape[1], device=mask.device)
        text = mask & (order < 0)  # [B, T] keys every token may see
        earlier = (order[:, None, :] >= 0) & (order[:, None, :] <= order[:, :, None])
        allowed = text[:, None, :] | (earlier & (order[:, :, None] >= 0))
        dtype = self.backbone.dtype
        additive = torch.zeros(allowed.shape, dtype=dtype, device=mask.device)
        return additive.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]

    # ---------------------------------------------------------------- encoding
    def embed(
        self, items: Sequence[Item], role: Role, num_vectors: int | None = None
    ) -> MultiVectors:
        slot_ids, take = self._layout(role)
        prepared = self.backbone.prepare(items, n_slots=len(slot_ids), role=role)
        if self.attention == "paper" and not self.backbone.causal:
            prepared.inputs["attention_mask"] = self._paper_mask(prepared)
        with self._slots(prepared.slot_positions, slot_ids.to(self.meta_tokens.device)):
            hidden = self.backbone.hidden_states(prepared)
        states = gather_rows(hidden, prepared.slot_positions[:, take])
        if self.projection is not None:
            states = self.projection(states.to(self.projection.weight.dtype))
        vectors = torch.nn.functional.normalize(states.float(), dim=-1)
        lengths = torch.full(
            (len(items),), vectors.shape[1], dtype=torch.long, device=vectors.device
        )
        return MultiVectors(vectors, lengths)

    def budgets(self) -> tuple[Budget, ...]:
        kept = tuple(
            b
            for b in METAEMBED_BUDGETS
            if b.query <= self.query_tokens and b.candidate <= self.candidate_tokens
        )
        return kept or (Budget(self.query_tokens, self.candidate_tokens),)

    def max_vectors(self) -> tuple[int, int]:
        return self.query_tokens, self.candidate_tokens

    def preprocessing(self) -> str:
        extra = getattr(self.backbone, "template", "")
        flow = "" if self.attention == "full" or self.backbone.causal else "|attention=paper"
        if getattr(self.backbone, "slot_positions", "after") != "after":
            flow += f"|slots={self.backbone.slot_positions}"
        return (
            f"metaembed-v1|{self.backbone.kind}|{extra}|{getattr(self.backbone, 'max_pixels', '')}"
            f"{flow}"
        )

    def save_released(self, directory, weights: str = "full", layout: str = "4.55"):
        """This model in the released code's checkpoint layout (see baselines/released.py)."""
        from harness.baselines.released import export_released

        return export_released(self, directory, weights=weights, layout=layout)

    def checkpoint_config(self) -> dict[str, Any]:
        return {
            "query_tokens": self.query_tokens,
            "candidate_tokens": self.candidate_tokens,
            "projection_dim": self.projection.out_features if self.projection is not None else None,
            "projection_bias": self.projection is not None and self.projection.bias is not None,
            "attention": self.attention,
            "template": getattr(self.backbone, "template", None),
            "meta_init": self.meta_init,
            # only where it is not the default, so that older configs read the same
            **(
                {"slot_positions": self.backbone.slot_positions}
                if getattr(self.backbone, "slot_positions", "after") != "after"
                else {}
            ),
        }


def load_metaembed(
    backbone: str | None = None,
    checkpoint: str | None = None,
    *,
    query_tokens: int | None = None,
    candidate_tokens: int | None = None,
    projection_dim: int | None = None,
    name: str | None = None,
    revision: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    seed: int = 0,
    attention: str | None = None,
    meta_init: str = "random",
    **backbone_options: Any,
) -> MetaEmbed:
    """`metaembed` in the registry: a backbone plus a checkpoint of meta tokens (and projection,
    adapters). Without a checkpoint the meta tokens are freshly initialised (untrained).

    `attention` defaults to what the checkpoint was trained with: its config says, and a config
    without the field (format 1) was trained with full attention on bidirectional backbones.
    A checkpoint in the released code's layout (full weights or a peft adapter) is read by
    `_load_released`; its format is recorded as `checkpoint_format` in the card's args."""
    if attention is not None and attention not in ATTENTION:
        raise UsageError(f"attention= must be one of {', '.join(ATTENTION)}, got {attention!r}")
    if checkpoint is not None and layout_of(checkpoint) != "own":
        return _load_released(
            checkpoint,
            backbone=backbone,
            query_tokens=query_tokens,
            candidate_tokens=candidate_tokens,
            projection_dim=projection_dim,
            name=name,
            revision=revision,
            device=device,
            dtype=dtype,
            seed=seed,
            attention=attention,
            **backbone_options,
        )
    config = read_checkpoint(checkpoint, MetaEmbed.config_file) if checkpoint is not None else {}
    if config.get("template") and "template" not in backbone_options:
        backbone_options["template"] = config["template"]  # the prompts it was trained with
    if config.get("slot_positions") and "slot_positions" not in backbone_options:
        backbone_options["slot_positions"] = config["slot_positions"]  # where its slots sat
    for key, given in (
        ("query_tokens", query_tokens),
        ("candidate_tokens", candidate_tokens),
        ("projection_dim", projection_dim),
    ):
        if checkpoint is not None and given is not None and given != config.get(key):
            raise HarnessError(
                f"checkpoint {checkpoint} has {key}={config.get(key)} but {key}={given} was asked for"
            )
    bb, config = load_for_checkpoint(
        backbone,
        checkpoint,
        MetaEmbed.config_file,
        revision=revision,
        device=device,
        dtype=dtype,
        **backbone_options,
    )
    trained_with = config.get("attention", "paper" if bb.causal else "full") if config else None
    if attention is not None and trained_with is not None and attention != trained_with:
        log.warning(
            "%s was trained with attention=%s; encoding with attention=%s as asked",
            checkpoint,
            trained_with,
            attention,
        )
    attention = attention or trained_with or "paper"
    args = {
        "backbone": bb.name,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "dtype": dtype,
        "attention": attention,
        **backbone_options,
    }
    if checkpoint is not None:
        args["checkpoint_format"] = "own"
    if meta_init != "random":  # only a fresh table starts from it; recorded where it was asked
        args["meta_init"] = meta_init
    model = MetaEmbed(
        bb,
        query_tokens=config.get("query_tokens", query_tokens or 16),
        candidate_tokens=config.get("candidate_tokens", candidate_tokens or 64),
        projection_dim=config.get("projection_dim", projection_dim),
        projection_bias=bool(config.get("projection_bias", False)),
        name=name or config.get("name") or "metaembed",
        seed=seed,
        attention=attention,
        meta_init=meta_init,
        args=args,
    )
    if checkpoint is not None:
        model.load_own_weights(checkpoint)
    return model


def _load_released(
    checkpoint: str,
    *,
    backbone: str | None,
    query_tokens: int | None,
    candidate_tokens: int | None,
    projection_dim: int | None,
    name: str | None,
    revision: str | None,
    device: str | None,
    dtype: str | None,
    seed: int,
    attention: str | None,
    **options: Any,
) -> MetaEmbed:
    """A checkpoint written by the released code: the meta-token table and projection from its
    files, LoRA merged into the base model's weights, the released prompts (`metaembed-7b`,
    the template its training config uses) unless `template=` says otherwise."""
    from harness.baselines.backbones import load_backbone
    from harness.baselines.released import merge_lora, read_released

    ckpt = read_released(checkpoint)
    total, hidden = ckpt.table.shape
    q, c = released_slot_counts(total, query_tokens, candidate_tokens, checkpoint)
    if ckpt.kind == "full" and backbone is not None:
        raise UsageError(
            f"{checkpoint} holds full weights, which are the backbone itself; drop backbone= "
            "(it names the base model of an adapter checkpoint)"
        )
    base = str(ckpt.path) if ckpt.kind == "full" else (backbone or ckpt.base)
    if base is None:
        raise UsageError(
            f"adapter {checkpoint} names no base model; pass --model-args backbone=HUB_ID_OR_DIR"
        )
    options.setdefault("template", "metaembed-7b")
    try:
        bb = load_backbone(base, revision=revision, device=device, dtype=dtype, **options)
    except HarnessError as exc:
        if ckpt.kind == "adapter" and backbone is None:
            raise HarnessError(
                f"the base model {base!r} named by {checkpoint}/adapter_config.json does not load "
                f"({exc}); pass --model-args backbone=HUB_ID_OR_DIR"
            ) from exc
        raise
    if hidden != bb.hidden_size:
        raise HarnessError(
            f"checkpoint {checkpoint} has meta tokens of size {hidden} but backbone {bb.name} "
            f"has hidden size {bb.hidden_size}"
        )
    merge_lora(bb.model, ckpt.lora, checkpoint)
    weight, bias = ckpt.projection if ckpt.projection is not None else (None, None)
    found = None if weight is None else int(weight.shape[0])
    if projection_dim is not None and projection_dim != found:
        raise HarnessError(
            f"checkpoint {checkpoint} has projection_dim={found} but projection_dim={projection_dim} was asked for"
        )
    args = {
        "backbone": bb.name,
        "checkpoint": str(checkpoint),
        "checkpoint_format": f"released-{ckpt.kind}",
        "dtype": dtype,
        "attention": attention or "paper",
        **options,
    }
    model = MetaEmbed(
        bb,
        query_tokens=q,
        candidate_tokens=c,
        projection_dim=found,
        projection_bias=bias is not None,
        name=name or "metaembed",
        seed=seed,
        attention=attention or "paper",
        args=args,
    )
    with torch.no_grad():
        model.meta_tokens.copy_(ckpt.table.to(model.meta_tokens))
        if weight is not None:
            model.projection.weight.copy_(weight.to(model.projection.weight))
            if bias is not None:
                model.projection.bias.copy_(bias.to(model.projection.bias))
    model.extra_digest = ckpt.digest
    return model


def released_slot_counts(
    total: int, query_tokens: int | None, candidate_tokens: int | None, checkpoint: Any
) -> tuple[int, int]:
    """Query and candidate slot counts of a released table with `total` rows (query slots
    first): 16 and 64 for 80 rows, else from query_tokens= / candidate_tokens=."""
    if query_tokens is None and candidate_tokens is None:
        if total != 80:
            raise UsageError(
                f"checkpoint {checkpoint} has {total} meta tokens; pass --model-args "
                f"query_tokens=N,candidate_tokens=M with N + M = {total}"
            )
        return 16, 64
    q = query_tokens if query_tokens is not None else total - int(candidate_tokens)
    c = candidate_tokens if candidate_tokens is not None else total - int(query_tokens)
    if q < 1 or c < 1 or q + c != total:
        raise UsageError(
            f"checkpoint {checkpoint} has {total} meta tokens, but query_tokens={q} and "
            f"candidate_tokens={c} add up to {q + c}"
        )
    return int(q), int(c)


BUNDLED_MINI = Path(__file__).parent / "checkpoints" / "metaembed-mini"


def load_metaembed_mini(checkpoint: str | None = None, **kwargs: Any) -> MetaEmbed:
    """MetaEmbed on all-MiniLM-L6-v2: the bundled checkpoint when present, else untrained."""
    from harness.baselines.backbones import MINILM

    if checkpoint is None and (BUNDLED_MINI / MetaEmbed.config_file).is_file():
        checkpoint = str(BUNDLED_MINI)
    if checkpoint is None:
        log.warning("metaembed-mini: no bundled checkpoint found, so its meta tokens are untrained")
        kwargs.setdefault("backbone", MINILM)
    kwargs.setdefault("name", "metaembed-mini")
    kwargs.setdefault("max_length", 512)  # as the other MiniLM entries (meta slots come on top)
    return load_metaembed(checkpoint=checkpoint, **kwargs)


# what --model-args are checked against (harness.registry.check_arg_types)
load_metaembed_mini.delegates = load_metaembed  # type: ignore[attr-defined]
