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
from typing import Any

from harness.benchmark import AggregateTable, Group, ModelEntry, TrainSource
from harness.errors import HarnessError, UsageError
from harness.options import split_names
from harness.task import TaskSpec

# Packages of encoders: each declares its models in MODELS (ModelEntry data, nothing heavy).
MODEL_PACKAGES: tuple[str, ...] = ("harness.baselines",)


def models() -> dict[str, ModelEntry]:
    """Every registered model, by name (imports only the packages' light model tables)."""
    entries = [e for p in MODEL_PACKAGES for e in importlib.import_module(p).MODELS]
    return _by_name(entries, "model")


def _by_name(entries: Iterable[Any], kind: str) -> dict[str, Any]:
    """Declared entries by their names; a name declared twice is the declarer's error."""
    out: dict[str, Any] = {}
    for entry in entries:
        if entry.name in out:
            raise RuntimeError(f"{kind} {entry.name!r} is declared twice")
        out[entry.name] = entry
    return out


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
    return _by_name(_declared("GROUPS"), "group")


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


# ---------------------------------------------------------------- tasks


def task_specs() -> dict[str, TaskSpec]:
    """Every registered task spec, by name (imports only the light task-spec modules)."""
    return _by_name(_declared("TASKS"), "task")


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
    table = models()
    if name in table:
        entry = table[name]
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
            f"unknown model {name!r}{_suggest(name, table)}; `python -m harness list models` lists them"
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
