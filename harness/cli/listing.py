"""`python -m harness list tasks|groups|models`."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    lst = sub.add_parser("list", parents=parents, help="list tasks, groups or models")
    lst.add_argument("what", choices=["tasks", "groups", "models"])


def command(args: argparse.Namespace) -> int:
    table = {"models": _models, "groups": _groups, "tasks": _tasks}[args.what]()
    if table is None:
        print("no tasks are installed in this version; see `python -m harness list groups`")
        return 0
    header, rows = table
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _models() -> tuple[list[str], list[list[str]]]:
    from harness.registry import models

    rows = [
        [e.name, e.family, e.backbone, "+".join(e.modalities), e.budgets, e.description]
        for e in models().values()
    ]
    return ["name", "family", "backbone", "modalities", "budgets", "description"], rows


def _groups() -> tuple[list[str], list[list[str]]]:
    from harness.registry import group_members, groups, task_specs

    specs = task_specs()
    rows = [
        [g.name, str(len(group_members(g.name, specs))), g.description] for g in groups().values()
    ]
    return ["group", "tasks", "description"], rows


def _tasks() -> tuple[list[str], list[list[str]]] | None:
    from harness.registry import task_specs

    rows = [
        [
            s.name,
            s.benchmark,
            s.category or "",
            s.split or "",
            s.kind,
            s.main_metric,
            s.dataset.path,
            s.dataset.revision or "",
        ]
        for s in task_specs().values()
    ]
    header = ["task", "benchmark", "category", "ind/ood", "kind", "main metric", "dataset"]
    return (header + ["revision"], rows) if rows else None
