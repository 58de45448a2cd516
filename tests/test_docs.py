"""docs/ stays what the code says: the CLI reference is regenerated and compared."""

from __future__ import annotations

from pathlib import Path

from harness.cli.reference import reference

ROOT = Path(__file__).resolve().parent.parent


def test_the_cli_reference_is_up_to_date():
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == reference(), (
        "docs/cli.md is out of date: python -m harness.cli.reference > docs/cli.md"
    )


def test_the_cli_reference_names_every_flag_of_run_and_train():
    from dataclasses import fields

    from harness.config import RunConfig, TrainConfig

    page = reference()
    for cls in (RunConfig, TrainConfig):
        for f in fields(cls):
            option = f.metadata.get("option")
            if option is not None:
                assert f"`{option.flag}`" in page, option.flag
