"""Lazy registries of models, tasks and task groups.

Entries are "module:attr" strings plus static metadata, so listing never imports torch,
transformers or a model's own dependencies. Users may also pass `package.module:attr` for
an encoder factory or a task spec of their own, with no registration.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.benchmark import AggregateTable, Group, TrainSource
from harness.errors import HarnessError, UsageError
from harness.task import TaskSpec


@dataclass(frozen=True)
class ModelEntry:
    name: str
    target: str  # "module:factory"; the factory takes model args as keywords
    family: str
    backbone: str
    modalities: tuple[str, ...]
    budgets: str  # as listed to users, e.g. "1x1,2x4,4x8,8x16,16x64"
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    # Settings of the default backbone, dropped when the user names a backbone or checkpoint.
    backbone_defaults: dict[str, Any] = field(default_factory=dict)


_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
_PAPER_BUDGETS = "1x1,2x4,4x8,8x16,16x64"
# MiniLM-based entries read up to 512 text tokens, so no libdocs page is cut (MetaEmbed's 80
# meta slots come on top, within the 512 positions: 432 text tokens, above the longest page).
_MINILM_DEFAULTS = {"backbone": _MINILM, "max_length": 512}

MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in [
        ModelEntry(
            name="metaembed",
            target="harness.baselines.metaembed:load_metaembed",
            family="metaembed",
            backbone="any Qwen2-VL / Qwen2.5-VL / text encoder (backbone=, checkpoint=)",
            modalities=("text", "image"),
            budgets=_PAPER_BUDGETS,
            description="MetaEmbed: 16 query + 64 candidate meta tokens, nested budgets",
        ),
        ModelEntry(
            name="metaembed-mini",
            target="harness.baselines.metaembed:load_metaembed_mini",
            family="metaembed",
            backbone=_MINILM,
            modalities=("text",),
            budgets=_PAPER_BUDGETS,
            description="MetaEmbed on all-MiniLM-L6-v2 (offline), the project's own checkpoint when bundled",
        ),
        ModelEntry(
            name="single-last",
            target="harness.baselines.single_vector:load_single",
            family="single",
            backbone="Qwen/Qwen2-VL-2B-Instruct",
            modalities=("text", "image"),
            budgets="1x1",
            description="last-token single vector (the paper's single-last)",
            defaults={"pooling": "last", "name": "single-last"},
            backbone_defaults={"backbone": "Qwen/Qwen2-VL-2B-Instruct"},
        ),
        ModelEntry(
            name="single-mean",
            target="harness.baselines.single_vector:load_single",
            family="single",
            backbone=_MINILM,
            modalities=("text",),
            budgets="1x1",
            description="mean-pooled single vector (sentence-transformers' all-MiniLM-L6-v2 by default)",
            defaults={"pooling": "mean", "name": "single-mean"},
            backbone_defaults=_MINILM_DEFAULTS,
        ),
        ModelEntry(
            name="single-cls",
            target="harness.baselines.single_vector:load_single",
            family="single",
            backbone=_MINILM,
            modalities=("text",),
            budgets="1x1",
            description="CLS-token single vector",
            defaults={"pooling": "cls", "name": "single-cls"},
            backbone_defaults=_MINILM_DEFAULTS,
        ),
        ModelEntry(
            name="vlm2vec",
            target="harness.baselines.single_vector:load_single",
            family="single",
            backbone="TIGER-Lab/VLM2Vec-Qwen2VL-2B",
            modalities=("text", "image"),
            budgets="1x1",
            description="VLM2Vec: last-token embedding of a Qwen2-VL fine-tune",
            defaults={"pooling": "last", "name": "vlm2vec", "template": "raw"},
            backbone_defaults={"backbone": "TIGER-Lab/VLM2Vec-Qwen2VL-2B"},
        ),
        ModelEntry(
            name="colbert",
            target="harness.baselines.colbert:load_colbert",
            family="colbert",
            backbone=_MINILM,
            modalities=("text",),
            budgets="allxall,allx64,allx32,allx16",
            description="token-level ColBERT-style twin of a backbone (128-d, pool_factor= for token pooling)",
            backbone_defaults=_MINILM_DEFAULTS,
        ),
        ModelEntry(
            name="colqwen2",
            target="harness.baselines.colbert:load_colqwen2",
            family="colbert",
            backbone="vidore/colqwen2-v1.0-hf",
            modalities=("text", "image"),
            budgets="allxall,allx64,allx32,allx16",
            description="ColQwen2 through transformers' ColQwen2ForRetrieval",
        ),
        ModelEntry(
            name="colpali",
            target="harness.baselines.colbert:load_colpali",
            family="colbert",
            backbone="vidore/colpali-v1.3-hf",
            modalities=("text", "image"),
            budgets="allxall,allx64,allx32,allx16",
            description="ColPali through transformers' ColPaliForRetrieval",
        ),
        ModelEntry(
            name="clip",
            target="harness.baselines.dual:load_clip",
            family="single",
            backbone="openai/clip-vit-base-patch32",
            modalities=("text", "image"),
            budgets="1x1",
            description="CLIP dual encoder",
        ),
        ModelEntry(
            name="siglip",
            target="harness.baselines.dual:load_siglip",
            family="single",
            backbone="google/siglip-base-patch16-224",
            modalities=("text", "image"),
            budgets="1x1",
            description="SigLIP dual encoder",
        ),
        ModelEntry(
            name="naive-multi",
            target="harness.baselines.naive_multi:load_naive_multi",
            family="naive-multi",
            backbone=_MINILM,
            modalities=("text",),
            budgets=_PAPER_BUDGETS,
            description="the paper's naive multi-vector baseline: K contiguous chunks, mean-pooled (not nested)",
            backbone_defaults=_MINILM_DEFAULTS,
        ),
        ModelEntry(
            name="test-hash",
            target="harness.testing:HashEncoder",
            family="test",
            backbone="none (vectors seeded from item content)",
            modalities=("text", "image"),
            budgets=_PAPER_BUDGETS,
            description="TEST ONLY: deterministic nested encoder for tests and smoke runs; its scores mean nothing.",
        ),
    ]
}

# Packages of benchmark modules: each lists its modules in MODULES, and each module declares
# its TASKS, GROUPS, TABLES and TRAIN_SOURCES as data (harness/benchmark.py). They import
# nothing heavy.
BENCHMARK_PACKAGES: tuple[str, ...] = ("harness.tasks",)


def benchmark_modules() -> list[Any]:
    modules = []
    for package in BENCHMARK_PACKAGES:
        names = importlib.import_module(package).MODULES
        modules += [importlib.import_module(f"{package}.{name}") for name in names]
    return modules


def _declared(attribute: str) -> list[Any]:
    return [x for module in benchmark_modules() for x in getattr(module, attribute, ())]


def groups() -> dict[str, Group]:
    """Every task group the benchmark modules declare, by name."""
    out: dict[str, Group] = {}
    for group in _declared("GROUPS"):
        if group.name in out:
            raise RuntimeError(f"group {group.name!r} is declared twice")
        out[group.name] = group
    return out


def aggregate_tables() -> list[AggregateTable]:
    """The benchmarks' summary tables, in display order."""
    return sorted(_declared("TABLES"), key=lambda t: t.order)


def train_sources() -> list[TrainSource]:
    return _declared("TRAIN_SOURCES")


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def import_target(target: str) -> Any:
    """Resolve "package.module:attr" (attr may be dotted)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UsageError(f"{target!r} is not of the form package.module:attr")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UsageError(f"cannot import {module_name!r} for {target!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise UsageError(f"{module_name!r} has no attribute {attr!r}") from exc
    return obj


def split_names(spec: str | Sequence[Any] | None) -> list[Any]:
    """Comma lists (in strings or list elements) flattened in order; non-strings kept as they are."""
    if spec is None:
        return []
    out: list[Any] = []
    for part in [spec] if isinstance(spec, str) else list(spec):
        if isinstance(part, str):
            out.extend(p.strip() for p in part.split(",") if p.strip())
        else:
            out.append(part)
    return out


# ---------------------------------------------------------------- tasks


def task_specs() -> dict[str, TaskSpec]:
    """Every registered task spec, by name (imports only the light task-spec modules)."""
    specs: dict[str, TaskSpec] = {}
    for spec in _declared("TASKS"):
        if spec.name in specs:
            raise RuntimeError(f"task {spec.name!r} is registered twice")
        specs[spec.name] = spec
    return specs


def group_members(name: str, specs: dict[str, TaskSpec] | None = None) -> list[TaskSpec]:
    specs = task_specs() if specs is None else specs
    group = groups()[name]
    return [s for s in specs.values() if group.member(s) or name in s.groups]


def get_tasks(names: str | Sequence[str | TaskSpec]) -> list[TaskSpec]:
    """Resolve task names, group names and `module:attr` specs into TaskSpecs, in order."""
    specs = task_specs()
    known_groups = groups()
    out: list[TaskSpec] = []
    for name in split_names(names):
        if isinstance(name, TaskSpec):
            found = [name]
        elif name in specs:
            found = [specs[name]]
        elif name in known_groups:
            found = group_members(name, specs)
            if not found:
                raise UsageError(
                    f"task group {name!r} has no tasks installed in this version; "
                    f"`python -m harness list tasks` shows the tasks there are"
                )
        elif ":" in name:
            obj = import_target(name)
            obj = obj() if callable(obj) and not isinstance(obj, TaskSpec) else obj
            if isinstance(obj, TaskSpec):
                found = [obj]
            elif isinstance(obj, list | tuple):
                found = list(obj)
            else:
                found = [obj]
            if not found or not all(isinstance(s, TaskSpec) for s in found):
                raise UsageError(f"{name!r} is neither a TaskSpec nor a list of them")
        else:
            raise UsageError(
                f"unknown task or group {name!r}{_suggest(name, [*specs, *known_groups])}"
            )
        for spec in found:
            if spec.name not in [s.name for s in out]:
                out.append(spec)
    if not out:
        raise UsageError("no tasks given: name tasks or groups, e.g. --tasks libdocs")
    return out


# ---------------------------------------------------------------- models


def get_model(name: str, model_args: dict[str, Any] | None = None, *, device: str | None = None):
    """Instantiate an encoder from a registry name or a `package.module:factory` target."""
    model_args = dict(model_args or {})
    if name in MODELS:
        entry = MODELS[name]
        factory = import_target(entry.target)
        # A checkpoint names its own backbone, settings and name.
        defaults = dict(entry.defaults) if model_args.get("checkpoint") is None else {}
        if model_args.get("checkpoint") is None and model_args.get("backbone") is None:
            defaults.update(entry.backbone_defaults)
        model_args = {**defaults, **model_args}
    elif ":" in name:
        factory = import_target(name)
    else:
        raise UsageError(
            f"unknown model {name!r}{_suggest(name, MODELS)}; `python -m harness list models` lists them"
        )
    if not callable(factory):
        raise UsageError(
            f"{name!r} is not a model factory (a class or function returning an encoder); "
            "`python -m harness list models` lists the registered ones"
        )
    kwargs = dict(model_args)
    if device is not None and _accepts(factory, "device"):
        kwargs["device"] = device
    try:
        # The arguments are checked against the factory's signature, so a TypeError raised
        # inside a factory stays the bug it is instead of reading as rejected --model-args.
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise UsageError(f"model {name!r} rejected --model-args {model_args}: {exc}") from exc
    except ValueError:  # no signature to check (some builtins): let the call decide
        pass
    if "name" in model_args and not str(model_args["name"] or "").strip():
        raise UsageError("--model-args name= is empty; give the model a name, or leave it out")
    coerced = check_arg_types(factory, model_args)
    kwargs.update(coerced)
    try:
        model = factory(**kwargs)
    except HarnessError:
        raise
    except Exception as exc:  # a factory of the user's (or a library) failing: named, one line
        raise HarnessError(
            f"model {name!r} could not be built: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from exc
    from harness.protocol import Encoder

    if not isinstance(model, Encoder):
        raise UsageError(f"{name!r} did not return an encoder (an object with .card and .encode)")
    return model


_KINDS = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}


def check_arg_types(factory: Callable[..., Any], args: dict[str, Any]) -> dict[str, Any]:
    """Refuse --model-args whose values do not fit the factory's annotations (`dim=abc` for an
    `int`), before any weights load. Arguments without an annotation are left to the factory.
    A factory that hands its `**kwargs` on declares where (`factory.delegates = other`), and
    that function's annotations count too. Returns the arguments to pass changed: a number given where a string is wanted (`name=2024`)
    becomes that string."""
    hints: dict[str, Any] = {}
    # A thin factory that passes **kwargs on names the function it passes them to (`delegates`).
    target: Any = factory
    while target is not None:
        try:
            init = target.__init__ if inspect.isclass(target) else target
            hints = {**typing.get_type_hints(init), **hints}
        except Exception:  # unresolvable annotations: nothing more to check against
            break
        target = getattr(target, "delegates", None)
    coerced: dict[str, Any] = {}
    for key, value in args.items():
        if key not in hints:
            continue
        allowed = _allowed(hints[key])
        if allowed is None or any(_fits(value, kind) for kind in allowed):
            continue
        if str in allowed and isinstance(value, int | float) and not isinstance(value, bool):
            coerced[key] = str(value)
            continue
        wanted = " or ".join(
            _KINDS.get(kind, "none") if isinstance(kind, type) or kind is None else repr(kind)
            for kind in allowed
        )
        raise UsageError(f"--model-args {key}= takes {wanted}, got {value!r}")
    return coerced


def _allowed(hint: Any) -> list[Any] | None:
    """The plain kinds an annotation admits (None for anything not plainly checkable)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arm in typing.get_args(hint):
            kinds = _allowed(arm)
            if kinds is None:
                return None
            out.extend(kinds)
        return out
    if origin is typing.Literal:
        return list(typing.get_args(hint))
    if hint is type(None):
        return [None]
    return [hint] if hint in _KINDS else None


def _fits(value: Any, kind: Any) -> bool:
    if kind is None:
        return value is None
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return value == kind


def _accepts(factory: Callable[..., Any], keyword: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def parse_model_args(text: str | None) -> dict[str, Any]:
    """`k=v,k2=v2` with ints, floats, true/false and none recognised."""
    out: dict[str, Any] = {}
    if not text:
        return out
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"malformed --model-args entry {part!r}: write key=value,key2=value2")
        if key.strip() in out:
            raise UsageError(f"--model-args gives {key.strip()}= twice; give it once")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _parse_value(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
