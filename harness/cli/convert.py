"""`python -m harness convert`: write a MetaEmbed checkpoint of this project in the released
code's layout (github.com/facebookresearch/MetaEmbed's `LastQwen2_5`), so that code loads it.

    python -m harness convert --model metaembed --model-args checkpoint=DIR --output OUT \\
        [--weights full|adapter] [--layout 4.55|4.51]

Reading the other way needs no conversion: `--model-args checkpoint=DIR` reads either layout.
"""

from __future__ import annotations

import argparse

from harness.cli.common import quiet_libraries
from harness.errors import UsageError
from harness.options import model_args


def add(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    convert = sub.add_parser(
        "convert",
        parents=parents,
        help="write a MetaEmbed checkpoint in the released code's layout",
    )
    convert.add_argument(
        "--model", default="metaembed", help="model to convert (default metaembed)"
    )
    convert.add_argument(
        "--model-args", default={}, type=model_args, help="k=v,... e.g. checkpoint=DIR"
    )
    convert.add_argument(
        "--output", required=True, help="a new folder for the converted checkpoint"
    )
    convert.add_argument(
        "--weights",
        choices=("full", "adapter"),
        default="full",
        help="full weights (LoRA merged), or the LoRA adapter as peft saves it (default full)",
    )
    convert.add_argument(
        "--layout",
        choices=("4.55", "4.51"),
        default="4.55",
        help="the transformers version whose key names the released code runs under (default 4.55)",
    )


def command(args: argparse.Namespace) -> int:
    quiet_libraries(args.verbose)
    from harness.adapters import adapters_kept
    from harness.registry import get_model

    if args.weights == "adapter":
        with adapters_kept():  # the adapter is written as it is, not merged
            encoder = get_model(args.model, args.model_args)
    else:
        encoder = get_model(args.model, args.model_args)
    save = getattr(encoder, "save_released", None)
    if save is None:
        raise UsageError(
            f"model {args.model!r} has no released layout; only MetaEmbed on Qwen-VL backbones does"
        )
    out = save(args.output, weights=args.weights, layout=args.layout)
    print(f"wrote {out} ({args.weights} weights, transformers {args.layout} key layout)")
    return 0
