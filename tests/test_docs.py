"""docs/ stays what the code says: the CLI reference is regenerated and compared, the README
stays short and links every topic page, every relative link resolves, and the README's own
model example runs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from harness.cli.reference import reference

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LINKED_PAGES = [README, *sorted(DOCS.glob("*.md")), ROOT / "bench" / "README.md"]
LINKED_PAGES += [
    ROOT / "results" / "libdocs" / "README.md",
    ROOT / "results" / "libdocs" / "recipe-75steps" / "README.md",
    ROOT / "results" / "libdocs" / "curves" / "README.md",
]
README_MAX_LINES = 260

FENCE = re.compile(r"^```.*?^```[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def links(page: Path) -> list[str]:
    """Every markdown link target of a page, outside code blocks and code spans."""
    prose = CODE_SPAN.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    return LINK.findall(prose)


def relative_targets(page: Path) -> list[tuple[str, Path]]:
    """(link, resolved file) for each relative link; web links and pure #anchors left out."""
    out = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue
        out.append((target, (page.parent / target.split("#", 1)[0]).resolve()))
    return out


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


def test_the_readme_stays_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): "
        "move the detail to a page under docs/ and link it"
    )


def test_the_readme_links_every_docs_page():
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "no docs/*.md found"
    linked = {path for _, path in relative_targets(README)}
    missing = [p.relative_to(ROOT).as_posix() for p in pages if p.resolve() not in linked]
    assert not missing, f"README.md does not link {missing} (add them to 'Where to read on')"


def test_every_relative_link_points_to_a_file():
    broken = [
        f"{page.relative_to(ROOT).as_posix()}: {target}"
        for page in LINKED_PAGES
        for target, path in relative_targets(page)
        if not path.exists()
    ]
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_the_link_checker_sees_links_and_ignores_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "[a](there.md#part) ![b](img/x.png) [web](https://example.org) [in](#anchor)\n"
        "`[not](code.md)`\n```\n[nor](fenced.md)\n```\n",
        encoding="utf-8",
    )
    assert [t for t, _ in relative_targets(page)] == ["there.md#part", "img/x.png"]
    assert relative_targets(page)[0][1] == (tmp_path / "there.md").resolve()


def test_every_docs_page_starts_with_a_title_and_what_it_covers():
    for page in sorted(DOCS.glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        assert lines and lines[0].startswith("# "), f"{page.name} does not start with '# Title'"
        following = [line for line in lines[1:] if line.strip()]
        assert following and not following[0].startswith(("#", "```", "|", "-")), (
            f"{page.name}: the title is not followed by a line saying what the page covers"
        )


def readme_block(section: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {section}")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_the_readme_model_example_encodes_and_runs(tmp_path, monkeypatch):
    """The 'Bring your own model' class, evaluated on the 'Bring your own task' example."""
    from PIL import Image

    (tmp_path / "my_model.py").write_text(readme_block("Bring your own model"))
    (tmp_path / "my_tasks.py").write_text(readme_block("Bring your own task"))
    (tmp_path / "pages").mkdir()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "pages" / "p1.png")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        run_the_readme_examples(tmp_path)
    finally:
        for name in ("my_model", "my_tasks"):
            sys.modules.pop(name, None)


def run_the_readme_examples(tmp_path: Path) -> None:
    import harness

    model = harness.get_model("my_model:WordHash", {"dim": 8})
    items = [harness.Item("a", "one two three four five six"), harness.Item("b", "")]
    queries = model.encode(items, role="query", batch_size=2)
    assert tuple(queries.vectors.shape) == (2, 4, 8) and queries.lengths.tolist() == [4, 1]
    candidates = model.encode(items, role="candidate", batch_size=2)
    assert candidates.lengths.tolist() == [6, 1]

    records = harness.evaluate(
        "my_model:WordHash",
        "my_tasks:TASKS",
        model_args={"dim": 8},
        output=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"),
        progress=False,
    )
    assert [row["label"] for row in records[0]["budgets"]] == ["1x1", "4x16"]
