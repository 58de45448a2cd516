"""`python -m harness train`: fit MetaEmbed with Matryoshka Multi-Vector Retrieval, and its
baselines (single-vector, naive multi-vector, MetaEmbed without nesting, ColBERT-style) under
identical settings.

AdamW with warm-up then decay, gradient accumulation, optional gradient checkpointing, bf16
autocast on GPU, LoRA through peft (r = alpha = 32 on the language model's attention and MLP
projections, as in the paper) with the encoder's own weights (meta tokens, projection) fully
trained, or full fine-tuning, or a frozen backbone. Checkpoints every N steps resume exactly:
the batches depend only on (seed, step), and weights, optimizer, schedule and random states are
restored. Under torchrun, candidates are gathered across ranks as in-batch negatives and
gradients are averaged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from harness import distributed
from harness.adapters import adapters_kept
from harness.config import TrainConfig
from harness.constants import LOG_FILE, STATE_DIR, resolve_device
from harness.errors import HarnessError, UsageError
from harness.protocol import TrainableEncoder
from harness.results import read_jsonl
from harness.training import dev_eval
from harness.training.data import Example, MixtureSampler, load_source, parse_mixture
from harness.training.losses import gather_candidates, mmr_loss, parse_groups

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- model set-up

LORA_TARGETS = {
    # the language model's attention and MLP projections (not the vision tower)
    "qwen-vl": r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$",
    # BERT / MiniLM (query, key, value, dense), MPNet (attn.q, attn.k, attn.v, attn.o), LLaMA-style
    "text": r".*\.(query|key|value|dense|attn\.[qkvo]|q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$",
}


def _groups_for(encoder, config: TrainConfig) -> list[tuple[int, int, float]]:
    family = encoder.card.family
    q, c = encoder.card.query_vectors, encoder.card.candidate_vectors
    if family == "metaembed":
        groups = parse_groups(config.groups, q, c)
        return groups[-1:] if config.objective == "nommr" else groups
    if config.groups is not None:
        raise UsageError(f"--groups applies to MetaEmbed models only, not to family {family!r}")
    if family == "colbert":
        return [(10**9, 10**9, 1.0)]  # every token
    return [(q, c, 1.0)]  # single-vector (1, 1); naive multi-vector its full (K_q, K_c)


def _setup_trainable(
    encoder, config: TrainConfig
) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """(the encoder's own parameters, backbone parameters) that will be trained."""
    backbone = encoder.backbone
    from peft import PeftModel

    if isinstance(backbone.model, PeftModel):
        # Training from a checkpoint that carries a LoRA adapter: LoRA goes on training that
        # adapter (a second one on top would be saved under keys the loader cannot place);
        # full fine-tuning merges it into the weights first; frozen keeps it as it is.
        saved = backbone.model.peft_config["default"]
        if config.tune == "lora" and (saved.r, saved.lora_alpha) != (
            config.lora_r,
            config.lora_alpha,
        ):
            raise UsageError(
                f"{encoder.card.name} carries a LoRA adapter with r={saved.r}, "
                f"alpha={saved.lora_alpha}, which training continues; pass --lora-r {saved.r} "
                f"--lora-alpha {saved.lora_alpha}, or --tune full"
            )
        if config.tune == "full":
            backbone.model = backbone.model.merge_and_unload()
            encoder.model = backbone.model
        log.info("continuing the LoRA adapter the model was loaded with")
    elif config.tune == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=LORA_TARGETS[backbone.kind],
        )
        backbone.model = get_peft_model(backbone.model, lora)
        encoder.model = backbone.model
    for param in backbone.model.parameters():
        param.requires_grad_(config.tune == "full")
    if config.tune == "lora":
        for name, param in backbone.model.named_parameters():
            param.requires_grad_("lora_" in name)
    own = [p for n, p in encoder.named_parameters() if not n.startswith("model.")]
    for param in own:
        param.requires_grad_(True)
    body = [p for p in backbone.model.parameters() if p.requires_grad]
    if not own and not body:
        raise UsageError(
            f"{encoder.card.name} has no weights of its own, so --tune frozen trains nothing; use lora or full"
        )
    if config.gradient_checkpointing and hasattr(backbone.model, "gradient_checkpointing_enable"):
        backbone.model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    return own, body


def _schedule(config: TrainConfig):
    def factor(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / max(1, config.warmup)
        if config.schedule == "constant":
            return 1.0
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        if config.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return max(0.0, 1.0 - progress)

    return factor


# ---------------------------------------------------------------- one step


def _role_vectors(encoder, items, role: str, groups):
    """Differentiable embeddings; a non-nested model is run at its own full count."""
    if encoder.card.nested:
        return encoder.embed(items, role)
    count = groups[-1][0] if role == "query" else groups[-1][1]
    return encoder.embed(items, role, count)


def _split(items: list, parts: int) -> list[list]:
    """`parts` contiguous chunks of nearly equal size."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        out.append(items[start:stop])
        start = stop
    return out


def _micro_loss(encoder, examples: list[Example], groups, config: TrainConfig):
    queries = [e.query for e in examples]
    candidates = [e.positive for e in examples]
    # owner[j]: the example whose hard negative candidate j is (-1 for positives)
    owner = [-1] * len(examples)
    if config.hard_negatives:
        for i, e in enumerate(examples):
            if e.negative is not None:
                candidates.append(e.negative)
                owner.append(i)
    q = _role_vectors(encoder, queries, "query", groups)
    c = _role_vectors(encoder, candidates, "candidate", groups)
    c_vectors, c_lengths, offset = gather_candidates(c.vectors, c.lengths)
    targets = torch.arange(len(examples), device=q.vectors.device) + offset
    exclude = _excluded(examples, candidates, owner, offset, config)
    return mmr_loss(
        q.vectors,
        q.lengths,
        c_vectors,
        c_lengths,
        targets,
        groups,
        config.temperature,
        exclude=exclude.to(q.vectors.device) if exclude.any() else None,
        reduction=config.group_reduction,
        normalize=config.normalize_scores,
    )


def _excluded(examples, candidates, owner, offset, config: TrainConfig) -> torch.Tensor:
    """[B, M] columns left out of each query's softmax over the gathered candidates: under
    `--negatives own`, the hard negatives of every other query (on any rank); under
    `--skip-copies`, other copies of the query's own positive."""
    keys = _gather([(x.content_hash, o) for x, o in zip(candidates, owner, strict=True)])
    rank_of = _gather([offset] * len(candidates))  # each column's rank, by its offset
    exclude = torch.zeros((len(examples), len(keys)), dtype=torch.bool)
    for i, e in enumerate(examples):
        for j, ((key, own), at) in enumerate(zip(keys, rank_of, strict=True)):
            if config.negatives == "own" and own >= 0 and (at != offset or own != i):
                exclude[i, j] = True
            if config.skip_copies and key == e.positive.content_hash and j != offset + i:
                exclude[i, j] = True
    return exclude


def _gather(values: list) -> list:
    """Every rank's list, concatenated in rank order (the candidates' gathered order)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    out: list[list] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(out, values)
    return [v for part in out for v in part]


# ---------------------------------------------------------------- state


def _trainable_state(encoder) -> dict[str, torch.Tensor]:
    return {
        n: p.detach().cpu().contiguous() for n, p in encoder.named_parameters() if p.requires_grad
    }


# What `harness train` writes into its output folder (and, in state/, into the training state).
OWN_FILES = {
    ".train.lock",
    "train_config.json",
    LOG_FILE,
    "loss.png",
    dev_eval.DEV_SCORES,
    dev_eval.DEV_CURVE,
    dev_eval.DEV_DIR,
    STATE_DIR,
    STATE_DIR + ".tmp",
    STATE_DIR + ".old",
    "adapter",
    "backbone",
}
STATE_FILES = {"trainable.safetensors", "optimizer.pt", "rng.pt", "meta.json"}
# what the encoder families' `save_pretrained` writes (baselines/encoder.py, metaembed.py)
CHECKPOINT_FILES = {
    "metaembed_config.json",
    "metaembed.safetensors",
    "encoder_config.json",
    "encoder.safetensors",
}


def _lock_output(output: Path):
    """An exclusive lock on the output folder for the whole run (released when the process
    ends): a second training run into the same folder stops instead of interleaving its
    steps and saves with this one's."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    handle = open(output / ".train.lock", "w")  # noqa: SIM115 (kept open for the run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise UsageError(
            f"another training run is writing to {output}; wait for it to finish or choose "
            "another --output"
        ) from None
    return handle


def check_output(output: Path) -> None:
    """`--output` must be new, empty, or a checkpoint folder of `harness train` (finished or
    interrupted, known by its train_config.json) holding only what training writes there:
    anything else would be overwritten or deleted, so the run stops before touching it."""
    if not output.exists():
        return
    if not output.is_dir():
        raise UsageError(f"--output {output} is a file; name a folder for the checkpoint")
    entries = sorted(p.name for p in output.iterdir() if p.name != ".train.lock")
    if not entries:
        return
    if "train_config.json" not in entries:
        raise UsageError(
            f"--output {output} already holds {_listing(entries)} and is not a checkpoint of "
            "`harness train` (no train_config.json); choose a new or empty folder"
        )
    foreign = [name for name in entries if name not in OWN_FILES | CHECKPOINT_FILES]
    for state in (STATE_DIR, STATE_DIR + ".tmp", STATE_DIR + ".old"):
        if (output / state).is_dir():
            foreign += [
                f"{state}/{p.name}" for p in (output / state).iterdir() if p.name not in STATE_FILES
            ]
        elif (output / state).exists():
            foreign.append(state)
    if foreign:
        raise UsageError(
            f"--output {output} is a training checkpoint but also holds {_listing(foreign)}, "
            "which training would overwrite or delete; move them out or choose another folder"
        )


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _save_state(
    directory: Path, encoder, optimizer, scheduler, step: int, config: TrainConfig
) -> None:
    tmp = directory.with_name(directory.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(_trainable_state(encoder), str(tmp / "trainable.safetensors"))
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
        tmp / "optimizer.pt",
    )
    torch.save(
        {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
        tmp / "rng.pt",
    )
    (tmp / "meta.json").write_text(
        json.dumps({"step": step, "config": asdict(config)}, indent=1, default=str)
    )
    old = directory.with_name(directory.name + ".old")
    if old.exists():  # left by a process killed while removing it
        shutil.rmtree(old)
    if directory.exists():
        directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old)
    else:
        tmp.rename(directory)


def _recover_state(directory: Path) -> None:
    """A process killed while `_save_state` swapped folders leaves the new state in `.tmp`
    (complete once its meta.json exists, which is written last) or the previous one in `.old`;
    put the newest complete one back in place."""
    leftovers = [directory.with_name(directory.name + s) for s in (".tmp", ".old")]
    if not (directory / "meta.json").is_file():
        for candidate in leftovers:
            if (candidate / "meta.json").is_file() and (candidate / "rng.pt").is_file():
                if directory.exists():
                    shutil.rmtree(directory)
                candidate.rename(directory)
                log.info("recovered training state from %s", candidate)
                break
    for leftover in leftovers:  # a partial save, or the state before the last one
        if leftover.exists():
            shutil.rmtree(leftover)


# Settings that may change between an interrupted run and its resumption: where things go,
# how the run is shown and evaluated, and when it pauses or saves.
RESUMABLE_CHANGES = {
    "output",
    "data_dir",
    "run_steps",
    "resume",
    "progress",
    "save_every",
    "device",
    "eval_every",
    "eval_tasks",
    "eval_budgets",
}


def check_same_settings(meta: dict[str, Any], config: TrainConfig, output: Path) -> None:
    """A resumed run must be the run that was interrupted: a different learning rate, batch
    size, loss or model would continue one schedule while recording another. Under a constant
    schedule the step count may grow (training continues longer)."""
    saved, now = meta.get("config") or {}, json.loads(json.dumps(asdict(config), default=str))
    allowed = set(RESUMABLE_CHANGES)
    if config.schedule == "constant" == saved.get("schedule"):
        allowed |= {"steps", "epochs"}
    differ = [
        f"{k} {saved[k]!r} -> {now[k]!r}"
        for k in now
        if k in saved and k not in allowed and saved[k] != now[k]
    ]
    if differ:
        raise UsageError(
            f"{output} holds a training state from other settings ({'; '.join(differ[:4])}"
            f"{' ...' if len(differ) > 4 else ''}); rerun with the same settings to resume, or "
            "pass --no-resume to start over"
        )


def _truncate_log(output: Path, step: int) -> None:
    """Drop log rows past the resumed step (written after the last saved state)."""
    path = output / LOG_FILE
    if path.exists():
        kept = [json.dumps(row) for row in read_log(output) if row["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


def _load_state(directory: Path, encoder, optimizer, scheduler) -> int:
    weights = load_file(str(directory / "trainable.safetensors"))
    params = dict(encoder.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise HarnessError(
            f"training state in {directory} does not fit this model (no parameter {missing[0]!r}); use another --output"
        )
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value.to(params[name].device))
    states = torch.load(directory / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(states["optimizer"])
    scheduler.load_state_dict(states["scheduler"])
    rng = torch.load(directory / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(json.loads((directory / "meta.json").read_text())["step"])


def export(encoder, directory: Path, config: TrainConfig) -> Path:
    """Write a checkpoint that `run --model <family> --model-args checkpoint=DIR` loads."""
    include_backbone = config.tune == "full"
    encoder.save_pretrained(directory, include_backbone=include_backbone)
    return directory


# ---------------------------------------------------------------- loop


@dataclass
class _Job:
    """A training run's moving parts, set up once."""

    encoder: Any
    groups: list[tuple[int, int, float]]
    sampler: MixtureSampler
    optimizer: torch.optim.Optimizer
    scheduler: Any
    trainable: list[torch.nn.Parameter]
    device: str
    dist: Any


def train(config: TrainConfig) -> Path:
    """Train and export; returns the checkpoint folder."""
    config.validate()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    output = Path(config.output)
    check_output(output)
    output.mkdir(parents=True, exist_ok=True)
    job = _set_up(config)
    rank = job.dist.rank
    lock = _lock_output(output) if rank == 0 else None  # noqa: F841 (held until the run ends)
    start = _resume(config, output, job)
    job.encoder.train()
    if config.tune == "frozen" or not config.dropout:
        # A frozen backbone runs without dropout; so does any with --no-dropout (torch's fused
        # CPU attention has no dropout, so this is also much faster on CPUs).
        job.encoder.backbone.model.eval()
    # `seconds` in the log is training time so far, summed over interrupted and resumed runs.
    earlier = next(
        (row.get("seconds", 0.0) for row in read_log(output) if row["step"] == start), 0.0
    )
    began = time.perf_counter() - earlier
    stop = config.steps if config.run_steps is None else min(config.steps, start + config.run_steps)
    bar = tqdm(
        range(start, stop),
        desc=f"train {job.encoder.card.name}",
        disable=not config.progress or rank != 0,
        initial=start,
        total=config.steps,
    )
    if rank == 0 and start == 0 and dev_eval.due(0, config.eval_every):
        began += dev_eval.evaluate_step(job.encoder, 0, config, output)
    for step in bar:
        total, terms = _step(job, step, config)
        if rank == 0:
            _log_step(output, step, total, terms, job, time.perf_counter() - began)
            bar.set_postfix(loss=f"{total:.4f}")
            if dev_eval.due(step + 1, config.eval_every):
                # before the state is saved: a kill in between reruns the steps and this
                # evaluation finds its result files rather than being skipped
                began += dev_eval.evaluate_step(job.encoder, step + 1, config, output)
        due = config.save_every and (step + 1) % config.save_every == 0
        if due and step + 1 < config.steps and rank == 0:
            _save_state(
                output / STATE_DIR, job.encoder, job.optimizer, job.scheduler, step + 1, config
            )
            export(job.encoder, output, config)
    bar.close()
    job.encoder.eval()
    if rank == 0 and stop > start:
        # The checkpoint first: a kill between the two reruns the last steps and exports
        # again, rather than leaving a finished state beside an older checkpoint.
        export(job.encoder, output, config)
        _save_state(output / STATE_DIR, job.encoder, job.optimizer, job.scheduler, stop, config)
        plot_loss(output)
    if stop < config.steps:
        log.info("stopped at step %d of %d; rerun the same command to continue", stop, config.steps)
    return output


def _set_up(config: TrainConfig) -> _Job:
    """The model, its training groups, the data, the optimizer and schedule."""
    from harness.registry import get_model

    device = resolve_device(config.device)
    dist, _ = distributed.init(device)
    # Everything that can be checked without the model is checked before it loads: the
    # groups' syntax, the evaluation tasks and budgets, the training data.
    if config.groups is not None:
        parse_groups(config.groups, None, None)
    if config.eval_every:
        from harness.budgets import parse_budgets
        from harness.registry import get_tasks

        get_tasks([t.strip() for t in config.eval_tasks.split(",") if t.strip()])
        parse_budgets(config.eval_budgets)
    sources = [
        (name, weight, load_source(name, config.data_dir))
        for name, weight in parse_mixture(config.data)
    ]
    sampler = MixtureSampler(sources, config.batch_size, config.seed)
    smallest, world = sampler.smallest_batch(), dist.world_size
    if smallest < world:
        raise UsageError(
            f"a batch of {smallest} examples (the last of an epoch) cannot be split over {world} "
            f"ranks; choose a --batch-size whose remainder on {sampler.size} examples is 0 or at "
            f"least {world}"
        )
    with adapters_kept():  # a checkpoint's LoRA adapter is trained on, not merged
        encoder = get_model(config.model, config.model_args, device=device)
    if not isinstance(encoder, TrainableEncoder):
        raise UsageError(
            f"model {config.model!r} cannot be trained here: it is not built on a harness backbone"
        )
    groups = _groups_for(encoder, config)
    if config.epochs is not None:
        config.steps = math.ceil(config.epochs * sampler.steps_per_epoch)
        log.info(
            "%s epochs of %d steps: %d steps", config.epochs, sampler.steps_per_epoch, config.steps
        )
    own, body = _setup_trainable(encoder, config)
    param_groups = [
        g
        for g in ({"params": own, "lr": config.own_lr}, {"params": body, "lr": config.lr})
        if g["params"]
    ]
    optimizer = torch.optim.AdamW(param_groups, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    trainable = [p for g in param_groups for p in g["params"]]
    return _Job(encoder, groups, sampler, optimizer, scheduler, trainable, device, dist)


def _resume(config: TrainConfig, output: Path, job: _Job) -> int:
    """The step to start from: a saved state's (recovered first if a kill left it mid-swap,
    log rows after it dropped), else 0 with a fresh log and no dev scores; writes
    train_config.json."""
    state_dir, rank = output / STATE_DIR, job.dist.rank
    start = 0
    if config.resume and rank == 0:
        _recover_state(state_dir)
    job.dist.barrier()
    if config.resume and (state_dir / "meta.json").is_file():
        check_same_settings(json.loads((state_dir / "meta.json").read_text()), config, output)
        start = _load_state(state_dir, job.encoder, job.optimizer, job.scheduler)
        log.info("resumed from step %d in %s", start, state_dir)
        if rank == 0:
            _truncate_log(output, start)
    elif rank == 0:
        # starting over: the earlier run's log and dev evaluations are not this run's
        for name in (LOG_FILE, dev_eval.DEV_SCORES, dev_eval.DEV_CURVE):
            (output / name).unlink(missing_ok=True)
        shutil.rmtree(output / dev_eval.DEV_DIR, ignore_errors=True)
    if rank == 0:
        (output / "train_config.json").write_text(
            json.dumps(asdict(config), indent=2, default=str) + "\n"
        )
    return start


def _step(job: _Job, step: int, config: TrainConfig) -> tuple[float, list[float]]:
    """One optimizer step on this rank's share of the step's batch: (loss, loss per group)."""
    world = job.dist.world_size
    batch = job.sampler.batch(step)[job.dist.rank :: world]
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if job.device.startswith("cuda")
        else contextlib.nullcontext()
    )
    # Exactly grad_accum micro-batches (fewer only when the batch is smaller), each loss
    # divided by their count, also for the smaller last batch of an epoch.
    chunks = [c for c in _split(batch, min(config.grad_accum, len(batch))) if c]
    total, terms_sum = 0.0, [0.0] * len(job.groups)
    for chunk in chunks:
        with autocast:
            loss, terms = _micro_loss(job.encoder, chunk, job.groups, config)
        (loss / len(chunks)).backward()
        total += float(loss.detach()) / len(chunks)
        terms_sum = [
            a + float(t.detach()) / len(chunks) for a, t in zip(terms_sum, terms, strict=True)
        ]
    if world > 1:
        import torch.distributed as dist

        for p in job.trainable:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world
    if config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(job.trainable, config.max_grad_norm)
    job.optimizer.step()
    job.scheduler.step()
    job.optimizer.zero_grad(set_to_none=True)
    return total, terms_sum


def _log_step(
    output: Path, step: int, total: float, terms: list[float], job: _Job, seconds: float
) -> None:
    record = {
        "step": step + 1,
        "loss": total,
        "groups": {
            f"{q}x{c}" if q < 10**9 else "all": t
            for (q, c, _), t in zip(job.groups, terms, strict=True)
        },
        "lr": job.scheduler.get_last_lr()[-1],
        "seconds": seconds,
    }
    with open(output / LOG_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def read_log(output: str | Path) -> list[dict[str, Any]]:
    return read_jsonl(Path(output) / LOG_FILE)


def plot_loss(output: str | Path) -> Path | None:
    """The loss curve (total and per group) as loss.png beside the checkpoint."""
    rows = read_log(output)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["loss"] for r in rows], label="total", linewidth=2)
    for name in rows[0]["groups"]:
        if len(rows[0]["groups"]) > 1:
            ax.plot(steps, [r["groups"][name] for r in rows], label=name, linewidth=1, alpha=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("InfoNCE loss")
    ax.set_title(Path(output).name)
    ax.legend()
    fig.tight_layout()
    path = Path(output) / "loss.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
