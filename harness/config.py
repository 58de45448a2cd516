"""The run configuration: one dataclass, echoed in full into every result file."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.constants import (
    DEFAULT_BLOCK_BYTES,
    DEFAULT_MODELS,
    DEFAULT_OUTPUT,
    DEFAULT_SHARD_SIZE,
    DEFAULT_TASKS,
    DEFAULT_TEMPERATURE,
    GROUP_REDUCTIONS,
    NEGATIVES,
    OBJECTIVES,
    SCHEDULES,
    TUNES,
    resolve_device,
)
from harness.errors import UsageError
from harness.options import model_args as parse_model_args
from harness.options import names, option, positive_int, size


def _env_data_dir() -> str | None:
    return os.environ.get("HARNESS_DATA_DIR") or None


@dataclass
class RunConfig:
    """The settings of `python -m harness run`: each field is a flag (see harness.options)."""

    models: list[str] = option(
        default_factory=lambda: list(DEFAULT_MODELS),
        flag="--model",
        aliases=("--models",),
        parse=names("--model"),
        help="comma list of registry names or package.module:factory "
        f"(default: {','.join(DEFAULT_MODELS)})",
    )
    tasks: list[str] = option(
        default_factory=lambda: list(DEFAULT_TASKS),
        flag="--tasks",
        parse=names("--tasks"),
        help=f"comma list of tasks, groups or package.module:attr (default: {','.join(DEFAULT_TASKS)})",
    )
    budgets: list[str] | None = option(  # None: each model's default budgets
        None,
        flag="--budgets",
        parse=names("--budgets"),
        help="comma list such as 1x1,2x4,16x64 or allxall; 'all' (default) = each model's own budgets",
    )
    model_args: dict[str, Any] = option(
        default_factory=dict,
        flag="--model-args",
        parse=parse_model_args,
        help="k=v,k2=v2 passed to each model's factory",
    )
    data_dir: str | None = option(
        default_factory=_env_data_dir,
        flag="--data-dir",
        help="offline dataset snapshots in the hub layout (default: $HARNESS_DATA_DIR)",
    )
    output: str = option(
        DEFAULT_OUTPUT, flag="--output", help=f"results directory (default: {DEFAULT_OUTPUT})"
    )
    cache_dir: str | None = option(
        None,
        flag="--cache-dir",
        help="embedding cache (default: $HARNESS_CACHE_DIR or ~/.cache/harness)",
    )
    no_cache: bool = option(
        False, flag="--no-cache", switch=True, help="keep no embeddings on disk"
    )
    shard_size: int = option(
        DEFAULT_SHARD_SIZE,
        flag="--shard-size",
        type=positive_int,
        minimum=1,
        help="items per cache shard, the unit of resuming and of work split across ranks (512)",
    )
    limit: int | None = option(
        None,
        flag="--limit",
        type=positive_int,
        minimum=1,
        help="evaluate only the first N queries of each task (smoke tests)",
    )
    batch_size: int = option(
        32,
        flag="--batch-size",
        type=positive_int,
        minimum=1,
        help="items per encoder call (default 32); lower it when a model runs out of memory",
    )
    device: str = option(
        "auto",
        flag="--device",
        choices=("auto", "cpu", "cuda"),
        help="where models run and scores are computed (auto: cuda when torch sees a GPU)",
    )
    overwrite: bool = option(
        False, flag="--overwrite", switch=True, help="recompute results that already exist"
    )
    top_k: int = option(
        100,
        flag="--top-k",
        type=positive_int,
        minimum=1,
        help="candidates kept per query on shared corpora (default 100): the run's depth, the "
        "largest cutoff metrics and TREC run files can use",
    )
    block_bytes: int = field(default=DEFAULT_BLOCK_BYTES, metadata={"minimum": 1})
    progress: bool = option(
        True,
        flag="--no-progress",
        invert=True,
        help="hide progress bars (the harness's and the libraries' loading bars) and, unless -v, "
        "transformers' warnings",
    )
    trec_runs: bool = option(
        False,
        flag="--trec-runs",
        switch=True,
        help="also write TREC run files (<output>/<model>/runs/<task>.<budget>.trec)",
    )
    # Shared-corpus candidate embeddings larger than this many bytes are scored from the cache
    # on disk, shard by shard (exact); None keeps them in memory.
    memory_limit: int | None = option(
        None,
        flag="--memory-limit",
        type=size,
        help="score shared-corpus candidates from disk, shard by shard, when their embeddings "
        "exceed this size (e.g. 8GiB); exact, like in-memory scoring",
    )
    # dtype of the MaxSim GEMM: float32 (default, exact ranking of stored vectors) or bfloat16 /
    # float16 (faster on GPUs; similarities are rounded, so near-ties may reorder)
    score_dtype: str = option(
        "float32",
        flag="--score-dtype",
        choices=("float32", "bfloat16", "float16"),
        help="dtype of the MaxSim GEMM (float32: exact; bfloat16 is faster on GPUs)",
    )
    # How a candidate's padded vectors (fewer vectors than the budget) score in MaxSim: "exact"
    # (never win the max) or "zero" (score 0, as colpali-engine, pylate and mteb do)
    candidate_padding: str = option(
        "exact",
        flag="--candidate-padding",
        choices=("exact", "zero"),
        help="how a candidate's padded vectors score in MaxSim when it has fewer than the "
        "budget: exact (never win the max; default) or zero (score 0, the rule of "
        "colpali-engine, pylate, vidore-benchmark and mteb, to match their published numbers)",
    )
    index: str = option(
        "exact",
        flag="--index",
        help="exact (default), faiss, or faiss:FACTORY[|PARAMS] such as faiss:IVF64,Flat|nprobe=8; "
        "approximate backends serve single-vector budgets and report recall against exact search",
    )

    def resolved_device(self) -> str:
        return resolve_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["device"] = self.resolved_device()
        return out


# ---------------------------------------------------------------- training


@dataclass
class TrainConfig:
    """The settings of `python -m harness train`: each field with a flag (harness.options) can
    also be set in a `--config` TOML or JSON file."""

    model: str = option(
        "metaembed-mini", flag="--model", help="model to train (default metaembed-mini)"
    )
    model_args: dict[str, Any] = option(
        default_factory=dict,
        flag="--model-args",
        parse=parse_model_args,
        help="k=v,... for the model factory",
    )
    data: str = option(
        "libdocs",
        flag="--data",
        help="sources, optionally weighted: libdocs[:N] | mmeb-train[:Subset+...] | colpali | "
        "task:NAME | jsonl:PATH, e.g. mmeb-train@0.7,colpali@0.3",
    )
    data_dir: str | None = option(None, flag="--data-dir", help="offline dataset snapshots")
    output: str = option(
        "checkpoints/metaembed-mini",
        flag="--output",
        help="checkpoint folder (also holds the training state and loss log)",
    )
    steps: int = option(100, flag="--steps", type=int, minimum=1, help="optimizer steps")
    # when set, steps = ceil(epochs x steps per epoch of the data)
    epochs: float | None = option(
        None,
        flag="--epochs",
        type=float,
        minimum=0,
        above=True,
        help="train for this many passes over the data (sets --steps)",
    )
    batch_size: int = option(
        32, flag="--batch-size", type=int, minimum=1, help="queries per step (in-batch negatives)"
    )
    grad_accum: int = option(
        1, flag="--grad-accum", type=int, minimum=1, help="micro-batches per step"
    )
    lr: float = option(
        2e-4,
        flag="--lr",
        type=float,
        minimum=0,
        above=True,
        help="learning rate of the backbone (LoRA or full)",
    )
    own_lr: float = option(
        1e-3,
        flag="--own-lr",
        type=float,
        minimum=0,
        above=True,
        help="learning rate of the encoder's own weights (meta tokens, projection)",
    )
    weight_decay: float = option(
        0.0, flag="--weight-decay", type=float, minimum=0, help="AdamW weight decay"
    )
    warmup: int = option(10, flag="--warmup", type=int, minimum=0, help="warm-up steps")
    schedule: str = option(
        "linear", flag="--schedule", help="linear | cosine | constant decay after warm-up"
    )
    max_grad_norm: float = 1.0
    temperature: float = option(
        DEFAULT_TEMPERATURE,
        flag="--temperature",
        type=float,
        minimum=0,
        above=True,
        help="InfoNCE temperature (0.03)",
    )
    objective: str = option(
        "mmr",
        flag="--objective",
        help="mmr (one loss per nested group) | nommr (largest group only)",
    )
    groups: str | None = option(  # the default for MetaEmbed: 1x1,2x4,4x8,8x16,16x64
        None,
        flag="--groups",
        help="nested groups with optional weights: 1x1,2x4,4x8,8x16,16x64 | 1x1=2,16x64 | "
        "[[1,1,1.0],[16,64,1.0]] (the released mrl_groups)",
    )
    hard_negatives: bool = option(
        True, flag="--no-hard-negatives", invert=True, help="use in-batch negatives only"
    )
    negatives: str = option(
        "own",
        flag="--negatives",
        help="own: a query's softmax holds every in-batch positive and its own hard negative "
        "(the released loss) | batch: every hard negative of the batch too",
    )
    group_reduction: str = option(
        "mean",
        flag="--group-reduction",
        help="mean: weighted sum of the group terms over their number (the released loss) | sum",
    )
    skip_copies: bool = option(
        False,
        flag="--skip-copies",
        switch=True,
        help="leave other copies of a query's positive (same content) out of its softmax; "
        "the released loss counts them as negatives",
    )
    normalize_scores: bool = option(
        False,
        flag="--normalize-scores",
        switch=True,
        help="divide each query's MaxSim by its number of vectors in the group (a temperature "
        "per group); the released MetaEmbed config leaves scores unnormalised",
    )
    tune: str = option("lora", flag="--tune", help="lora | full | frozen")
    lora_r: int = option(32, flag="--lora-r", type=int, minimum=1, help="LoRA rank (32)")
    lora_alpha: int = option(32, flag="--lora-alpha", type=int, minimum=1, help="LoRA alpha (32)")
    lora_dropout: float = 0.0
    gradient_checkpointing: bool = option(
        False, flag="--gradient-checkpointing", switch=True, help="trade compute for memory"
    )
    # False: the backbone runs without dropout (eval mode) while training
    dropout: bool = option(
        True, flag="--no-dropout", invert=True, help="train with the backbone's dropout off"
    )
    seed: int = option(
        0, flag="--seed", type=int, minimum=0, help="seed of weights' initialisation and batches"
    )
    save_every: int = option(  # 0: only at the end
        0,
        flag="--save-every",
        type=int,
        minimum=0,
        help="save a resumable checkpoint every N steps",
    )
    eval_every: int = option(  # 0: no evaluation while training
        0,
        flag="--eval-every",
        type=int,
        minimum=0,
        help="evaluate on --eval-tasks at step 0 and every N steps (dev_scores.jsonl, dev_curve.png)",
    )
    eval_tasks: str = option(
        "libdocs-dev",
        flag="--eval-tasks",
        help="tasks evaluated by --eval-every (default libdocs-dev)",
    )
    eval_budgets: str | None = option(
        None, flag="--eval-budgets", help="budgets evaluated by --eval-every (default: the model's)"
    )
    run_steps: int | None = option(
        None,
        flag="--run-steps",
        type=int,
        minimum=1,
        help="stop after N steps in this invocation (rerun to continue)",
    )
    device: str = option(
        "auto", flag="--device", choices=("auto", "cpu", "cuda"), help="auto | cpu | cuda"
    )
    resume: bool = option(
        True,
        flag="--no-resume",
        invert=True,
        help="start over even if the output holds a training state",
    )
    progress: bool = option(
        True, flag="--no-progress", invert=True, help="hide progress bars and library notices"
    )

    def validate(self) -> None:
        for name, value, allowed in (
            ("objective", self.objective, OBJECTIVES),
            ("negatives", self.negatives, NEGATIVES),
            ("group-reduction", self.group_reduction, GROUP_REDUCTIONS),
            ("tune", self.tune, TUNES),
            ("schedule", self.schedule, SCHEDULES),
        ):
            if value not in allowed:
                raise UsageError(f"--{name} must be one of {', '.join(allowed)}, got {value!r}")
        for name in ("steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be positive")
        if self.eval_every < 0:
            raise UsageError("--eval-every must be 0 (no evaluation) or positive")
        if self.epochs is not None and self.epochs <= 0:
            raise UsageError("--epochs must be positive")
        if self.batch_size % self.grad_accum:
            raise UsageError("--batch-size must be a multiple of --grad-accum")
