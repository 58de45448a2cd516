"""One mechanism for the settings of `run` and `train`: each field of the config dataclass
carries its flag, help text and parser (`option`), the command line is built from the fields,
and a config file (TOML or JSON) and the flags fill the same dataclass the same way, the flags
winning over the file and the file over the field's default."""

from __future__ import annotations

import argparse
import json
import math
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from harness.errors import UsageError


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    type: Callable[[str], Any] | None = None  # argparse conversion (errors exit 2 at parsing)
    parse: Callable[[Any], Any] | None = None  # applied after parsing, to flag and file values
    invert: bool = False  # `--no-x` turns a True field off
    switch: bool = False  # a flag without a value that turns a False field on
    choices: Sequence[str] | None = None
    aliases: tuple[str, ...] = ()
    minimum: float | None = None  # the smallest value allowed
    above: bool = False  # True: the value must be strictly greater than `minimum`


def option(default: Any = MISSING, *, default_factory: Any = MISSING, **spec: Any) -> Any:
    """A dataclass field with its command-line flag (see `Option`)."""
    meta = {"option": Option(**spec)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _options(cls: type) -> list[tuple[Field, Option]]:
    return [(f, f.metadata["option"]) for f in fields(cls) if "option" in f.metadata]


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per option field of `cls`; absent flags parse to None (the file or default rules)."""
    for f, opt in _options(cls):
        if opt.invert or opt.switch:
            parser.add_argument(
                opt.flag,
                *opt.aliases,
                dest=f.name,
                action="store_true",
                default=None,
                help=opt.help,
            )
        else:
            parser.add_argument(
                opt.flag,
                *opt.aliases,
                dest=f.name,
                type=opt.type,
                choices=opt.choices,
                default=None,
                help=opt.help,
            )


def read_config_file(path: str | None, cls: type) -> dict[str, Any]:
    """The fields set in a TOML or JSON file; an unknown field is a usage error."""
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            values = tomllib.load(handle) if not path.endswith(".json") else json.load(handle)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read --config {path}: {exc}") from exc
    if not isinstance(values, dict):
        raise UsageError(
            f"--config {path} holds a {type(values).__name__}, not a table of settings "
            '(TOML: key = value lines; JSON: {"key": value})'
        )
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(
            f"unknown field {unknown[0]!r} in {path}; known: {', '.join(sorted(known))}"
        )
    return values


def settings(cls: type, args: argparse.Namespace, path: str | None = None) -> dict[str, Any]:
    """Field values from the config file, then from the flags given (a flag wins); each is
    checked against its field's declared type and range before anything runs."""
    values = read_config_file(path, cls)
    by_name = {f.name: opt for f, opt in _options(cls)}
    for name, opt in by_name.items():
        if isinstance(values.get(name), str) and opt.type is size:
            try:
                values[name] = size(values[name])
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"{opt.flag} in {path}: {exc}") from None
    check_values(cls, values, f"in {path}")
    for name, opt in by_name.items():
        if isinstance(values.get(name), str) and opt.parse is not None:
            values[name] = opt.parse(values[name])
    for name, opt in by_name.items():
        given = getattr(args, name, None)
        if given is None:
            continue
        if opt.invert:
            values[name] = False
        elif opt.switch:
            values[name] = True
        else:
            values[name] = opt.parse(given) if opt.parse is not None else given
    check_values(cls, values, "")
    return values


_KINDS = {
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "list[str]": (list, str),
    "dict[str, Any]": (dict, str),
}


def check_values(cls: type, values: dict[str, Any], where: str) -> None:
    """Each value against its field's declared type (booleans only true or false, numbers only
    numbers: a file's `overwrite = "false"` is an error, not true) and the option's range."""
    declared = {f.name: f for f in fields(cls)}
    for name, value in values.items():
        f = declared.get(name)
        if f is None:
            continue
        kind = str(f.type).replace("Optional[", "").replace(" ", "")
        optional = "|None" in kind
        kind = kind.replace("|None", "").replace(",", ", ")
        if value is None and optional:
            continue
        allowed = _KINDS.get(kind)
        opt = f.metadata.get("option")
        flag = opt.flag if opt is not None else name
        label = f"{name} ({flag})" if where and flag != name else flag
        place = f" {where}" if where else ""
        if allowed is not None:
            wrong = not isinstance(value, allowed) or (
                bool not in allowed and isinstance(value, bool)
            )
            if wrong:
                wanted = {
                    "bool": "true or false",
                    "int": "a whole number",
                    "float": "a number",
                    "list[str]": "a list of names or a comma-separated string",
                    "dict[str, Any]": "a table or a k=v,... string",
                }
                raise UsageError(
                    f"{label}{place} must be {wanted.get(kind, 'a ' + kind)}, got {value!r}"
                )
            if kind == "list[str]" and isinstance(value, list):
                if not value:
                    raise UsageError(f"{label}{place} is empty; name at least one, or leave it out")
                if not all(isinstance(v, str) and v.strip() for v in value):
                    raise UsageError(f"{label}{place} must list names (strings), got {value!r}")
            if kind == "float" and not math.isfinite(value):
                raise UsageError(f"{label}{place} must be a finite number, got {value!r}")
        if opt is not None and opt.choices and value not in opt.choices:
            raise UsageError(
                f"{label}{place} must be one of {', '.join(opt.choices)}, got {value!r}"
            )
        # a field without a flag (a config-file or API setting) may declare its own minimum
        low = opt.minimum if opt is not None else f.metadata.get("minimum")
        if low is not None and isinstance(value, int | float):
            above = opt is not None and opt.above
            if value < low or (above and value == low):
                bound = f"greater than {low:g}" if above else f"at least {low:g}"
                raise UsageError(f"{label}{place} must be {bound}, got {value!r}")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def size(text: str) -> int:
    """Bytes from '512MiB', '8GB', '1.5GiB' or a plain number."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 512MiB, 8GB or 1000000, got {text!r}"
        )
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return value


def names(flag: str) -> Callable[[Any], list[str]]:
    """A comma list; given but empty is a usage error (`--tasks ''` must not quietly run the
    default suite)."""

    def parse(value: Any) -> list[str]:
        listed = split_names(value)
        if not listed:
            raise UsageError(f"{flag} is empty; name at least one, or leave the flag out")
        return listed

    return parse


def model_args(value: Any) -> dict[str, Any]:
    return parse_model_args(value) if isinstance(value, str) else dict(value)


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
