"""Build the offline `libdocs` benchmark: long, multi-topic documentation pages of Python libraries.

Two stages, so that the suite is byte-reproducible from a committed snapshot:

1. `extract` reads the docstrings of the standard library and of installed documentation-rich
   packages (NumPy, SciPy, pandas, Matplotlib, SymPy, NetworkX, scikit-learn, PyTorch) into
   `tasks/data/libdocs/raw.jsonl.gz`, one row per documented function, class or method, with the
   package versions in `SOURCE.json`. Only this stage depends on what is installed.
2. `build` turns the snapshot into pages and queries with no other input than the snapshot and
   the all-MiniLM-L6-v2 tokenizer (for token counts), and records a sha256 of every output file
   in `SOURCE.json`; `tests/test_libdocs.py` rebuilds and compares.

A page is a run of consecutive members of one module (a class with its methods, or a module's
functions): each member's qualified name and signature, then its documentation with the first
sentence (the summary) removed, cut at a line boundary to at most `SECTION_TOKENS` tokens; at
least `MIN_SECTIONS` members and at most `PAGE_TOKENS` tokens per page, so no model in the suite
truncates a page (MetaEmbed on MiniLM reads 432 text tokens beside its 80 meta slots). A query is
the summary sentence of one member; its one relevant page is the page holding that member, among
sibling pages of the same library. A single vector of a page has to hold several members, so it
loses the detail a query asks for, while a multi-vector reading can keep one vector near each.

Filters: a query is dropped when its text occurs word for word (case and spacing folded) in any
page or equals another member's summary; splits are disjoint by module (a stable hash), and any
member whose documentation nearly duplicates one in another split (word 8-gram Jaccard >= 0.5
on the whole documentation or on the section as it appears on the page, or the same folded
summary) is removed from the split that is not test (test > dev > train). What this does not
catch: a short text contained in a much longer one (Jaccard below 0.5) and summaries that
differ by a word.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib
import inspect
import json
import platform
import re
import sys
import warnings
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).parent / "data" / "libdocs"

QUICK_PAGES = 160  # test pages in the default run's subset (tasks/libdocs.py)
SECTION_TOKENS = 110  # one member's section (name, signature, documentation)
PAGE_TOKENS = 420  # one page, title included; below MetaEmbed-on-MiniLM's 432 text tokens
MIN_SECTIONS = 3
MAX_SECTIONS = 6
MIN_BODY_CHARS = 60  # a member needs some documentation beyond its summary
NEAR_DUP_JACCARD = 0.5
SHINGLE = 8

STDLIB = [
    "abc", "argparse", "array", "ast", "asyncio.events", "asyncio.locks", "asyncio.queues",
    "asyncio.streams", "asyncio.tasks", "base64", "bdb", "binascii", "bisect", "bz2", "calendar",
    "cmd", "code", "codecs", "collections", "collections.abc", "concurrent.futures",
    "configparser", "contextlib", "copy", "csv", "ctypes", "dataclasses", "datetime", "decimal",
    "difflib", "dis", "doctest", "email.headerregistry", "email.message", "email.policy",
    "email.utils", "enum", "filecmp", "fileinput", "fnmatch", "fractions", "ftplib", "functools",
    "gc", "getopt", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "html.parser",
    "http.client", "http.cookiejar", "http.cookies", "http.server", "imaplib", "importlib",
    "importlib.metadata", "importlib.resources", "inspect", "io", "ipaddress", "itertools", "json",
    "json.decoder", "json.encoder", "linecache", "locale", "logging", "logging.config",
    "logging.handlers", "lzma", "mailbox", "math", "mimetypes", "mmap", "multiprocessing",
    "multiprocessing.managers", "multiprocessing.pool", "netrc", "numbers", "operator", "optparse",
    "os", "os.path", "pathlib", "pdb", "pickle", "pickletools", "pkgutil", "platform", "plistlib",
    "poplib", "pprint", "profile", "pstats", "pydoc", "queue", "quopri", "random", "re", "reprlib",
    "sched", "secrets", "select", "selectors", "shelve", "shlex", "shutil", "signal", "smtplib",
    "socket", "socketserver", "sqlite3", "ssl", "stat", "statistics", "string", "struct",
    "subprocess", "symtable", "sysconfig", "tabnanny", "tarfile", "tempfile", "textwrap",
    "threading", "timeit", "tokenize", "trace", "traceback", "types", "typing", "unicodedata",
    "unittest.case", "unittest.mock", "urllib.parse", "urllib.request", "urllib.robotparser",
    "uuid", "warnings", "wave", "weakref", "xml.dom.minidom", "xml.dom.pulldom",
    "xml.etree.ElementTree", "xml.sax", "xmlrpc.client", "xmlrpc.server", "zipfile", "zipimport",
    "zlib", "zoneinfo",
]  # fmt: skip
PACKAGES = {
    "numpy": [
        "numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.ma",
        "numpy.polynomial.polynomial", "numpy.lib.stride_tricks", "numpy.testing",
    ],
    "scipy": [
        "scipy.stats", "scipy.linalg", "scipy.optimize", "scipy.signal", "scipy.sparse",
        "scipy.sparse.linalg", "scipy.sparse.csgraph", "scipy.interpolate", "scipy.integrate",
        "scipy.spatial", "scipy.spatial.distance", "scipy.ndimage", "scipy.cluster.hierarchy",
        "scipy.cluster.vq", "scipy.io", "scipy.fft", "scipy.special", "scipy.constants",
    ],
    "pandas": ["pandas", "pandas.api.types", "pandas.io.formats.style", "pandas.plotting"],
    "matplotlib": [
        "matplotlib.pyplot", "matplotlib.axes", "matplotlib.figure", "matplotlib.colors",
        "matplotlib.ticker", "matplotlib.dates", "matplotlib.patches", "matplotlib.lines",
        "matplotlib.text", "matplotlib.transforms", "matplotlib.path", "matplotlib.cm",
    ],
    "sympy": [
        "sympy.core.expr", "sympy.core.basic", "sympy.simplify.simplify", "sympy.solvers.solvers",
        "sympy.polys.polytools", "sympy.matrices.matrixbase", "sympy.integrals.integrals",
        "sympy.series.series", "sympy.functions.combinatorial.numbers", "sympy.ntheory.factor_",
        "sympy.sets.sets", "sympy.logic.boolalg", "sympy.geometry.point",
        "sympy.geometry.line", "sympy.combinatorics.permutations", "sympy.printing.latex",
    ],
    "networkx": [
        "networkx.classes.graph", "networkx.classes.digraph", "networkx.classes.function",
        "networkx.algorithms.shortest_paths.generic", "networkx.algorithms.shortest_paths.weighted",
        "networkx.algorithms.centrality", "networkx.algorithms.components",
        "networkx.algorithms.flow", "networkx.algorithms.traversal", "networkx.algorithms.dag",
        "networkx.algorithms.matching", "networkx.algorithms.clique", "networkx.algorithms.cycles",
        "networkx.generators.random_graphs", "networkx.generators.classic",
        "networkx.readwrite", "networkx.linalg",
    ],
    "sklearn": [
        "sklearn.linear_model", "sklearn.ensemble", "sklearn.cluster", "sklearn.decomposition",
        "sklearn.metrics", "sklearn.model_selection", "sklearn.preprocessing", "sklearn.svm",
        "sklearn.tree", "sklearn.neighbors", "sklearn.feature_extraction.text",
        "sklearn.pipeline", "sklearn.impute", "sklearn.manifold", "sklearn.utils",
    ],
    "torch": [
        "torch", "torch.nn.functional", "torch.linalg", "torch.fft", "torch.distributions",
        "torch.optim", "torch.utils.data", "torch.nn.modules.module", "torch.autograd",
        "torch.special", "torch.distributed",
    ],
}  # fmt: skip
LICENSES = {
    "stdlib": "Python Software Foundation License Version 2 (CPython documentation)",
    "numpy": "BSD-3-Clause",
    "scipy": "BSD-3-Clause",
    "pandas": "BSD-3-Clause",
    "matplotlib": "Matplotlib License (PSF-based)",
    "sympy": "BSD-3-Clause",
    "networkx": "BSD-3-Clause",
    "sklearn": "BSD-3-Clause (scikit-learn)",
    "torch": "BSD-3-Clause (PyTorch)",
}
DIST_NAMES = {"sklearn": "scikit-learn"}

ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)(\s*->\s*.*)?$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`'\"])")
WORD = re.compile(r"\w+")


# ---------------------------------------------------------------- stage 1: extract


def _signature(obj) -> str:
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"
    text = ADDRESS.sub("", text)  # default values' reprs may hold memory addresses
    return text if len(text) <= 160 else text[:157] + "...)"


def _members(module, package: str):
    for name, obj in sorted(vars(module).items()):
        owner = getattr(obj, "__module__", None) or ""
        if name.startswith("_") or not (
            owner == module.__name__ or (package != "stdlib" and owner.startswith(package))
        ):
            continue
        if inspect.isclass(obj):
            yield name, obj
            for attr, value in sorted(vars(obj).items()):
                if not attr.startswith("_") and (
                    inspect.isfunction(value) or inspect.ismethoddescriptor(value)
                ):
                    yield f"{name}.{attr}", value
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
            yield name, obj


def extract() -> tuple[list[dict], dict]:
    rows, seen = [], set()
    versions = {"python": platform.python_version()}
    for package, modules in (("stdlib", STDLIB), *PACKAGES.items()):
        for module_name in modules:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    module = importlib.import_module(module_name)
            except Exception:  # a module missing from this build
                print(f"skipped {module_name}: cannot import", file=sys.stderr)
                continue
            if package != "stdlib":
                from importlib.metadata import version

                versions[package] = version(DIST_NAMES.get(package, package))
            for qualname, obj in _members(module, package):
                try:
                    doc = inspect.getdoc(obj)
                except Exception:
                    continue
                if not doc or not doc.strip():
                    continue
                doc = ADDRESS.sub("", doc)
                key = (module_name, qualname)
                if key in seen:
                    continue
                seen.add(key)
                rows.append(
                    {
                        "package": package,
                        "module": module_name,
                        "qualname": qualname,
                        "signature": _signature(obj) if callable(obj) else "",
                        "doc": doc,
                    }
                )
    return rows, versions


# ---------------------------------------------------------------- stage 2: build


def _tokenizer():
    from transformers import AutoTokenizer

    from harness.baselines.backbones import MINILM, resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path(MINILM))


def summary_and_body(doc: str) -> tuple[str, str] | None:
    """The first sentence and the rest, or None when either is too short to use."""
    lines = doc.strip().splitlines()
    while lines and SIGNATURE_LINE.match(lines[0].strip()):
        lines = lines[1:]
    while lines and (not lines[0].strip() or set(lines[0].strip()) <= {"-", "="}):
        lines = lines[1:]
    text = "\n".join(lines).strip()
    paragraphs = text.split("\n\n")
    first = " ".join(paragraphs[0].split())
    parts = SENTENCE_END.split(first, maxsplit=1)
    summary = parts[0].strip()
    rest = (parts[1] if len(parts) > 1 else "") + (
        "\n\n" + "\n\n".join(paragraphs[1:]) if len(paragraphs) > 1 else ""
    )
    body = rest.strip()
    if not (25 <= len(summary) <= 200) or not summary.endswith(".") or len(summary.split()) < 4:
        return None
    if len(body) < MIN_BODY_CHARS:
        return None
    return summary, body


def fold(text: str) -> str:
    """Case and spacing folded, for word-for-word matching."""
    return " ".join(WORD.findall(text.lower()))


def split_of(module: str) -> str:
    """Disjoint by module: a stable hash puts ~50% of modules in train, 10% in dev, 40% in test."""
    bucket = int(hashlib.sha256(module.encode()).hexdigest(), 16) % 10
    return "test" if bucket < 4 else "dev" if bucket == 4 else "train"


def stable_rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def task_of(query_id: str) -> str:
    """Which test task a query belongs to: a stable hash sends 2/3 to corpus, 1/3 to lists."""
    return "lists" if int(stable_rank("task:" + query_id), 16) % 3 == 0 else "corpus"


def _cut(text: str, budget: int, count) -> str:
    """The longest prefix of whole lines within `budget` tokens. The MiniLM (BERT) tokenizer
    splits on whitespace first, so a text's count is the sum of its lines' counts."""
    out, used = [], 0
    for line in text.splitlines():
        used += count(line)
        if used > budget:
            break
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


def _shingles(text: str) -> set[int]:
    words = WORD.findall(text.lower())
    return {
        int.from_bytes(hashlib.blake2b(" ".join(words[i : i + SHINGLE]).encode(), digest_size=8).digest(), "big")
        for i in range(max(1, len(words) - SHINGLE + 1))
    }  # fmt: skip


def near_duplicate_drops(members: list[dict]) -> set[int]:
    """Indices of members to drop so that no two splits share a near-duplicate member."""
    rank = {"test": 0, "dev": 1, "train": 2}
    partners: list[set[int]] = [set() for _ in members]
    # Near-copies of the whole documentation, or of the section as it appears on a page.
    for field in ("body", "section"):
        shingles = [_shingles(m[field]) for m in members]
        index: dict[int, list[int]] = defaultdict(list)
        for i, sh in enumerate(shingles):
            for s in sh:
                index[s].append(i)
        for i in range(len(members)):
            shared: dict[int, int] = defaultdict(int)
            for s in shingles[i]:
                for j in index[s]:
                    if j != i:
                        shared[j] += 1
            partners[i] |= {
                j
                for j, n in shared.items()
                if n / len(shingles[i] | shingles[j]) >= NEAR_DUP_JACCARD
            }
    by_summary: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(members):
        by_summary[fold(m["summary"])].append(i)
    drop: set[int] = set()
    for i, m in enumerate(members):
        partners[i] |= set(by_summary[fold(m["summary"])]) - {i}
        for j in partners[i]:
            if members[j]["split"] != m["split"] and rank[m["split"]] > rank[members[j]["split"]]:
                drop.add(i)
    return drop


def pack(members: list[dict], budget: int, count) -> list[list[dict]]:
    """Consecutive runs of at most MAX_SECTIONS members within `budget` tokens; runs of fewer
    than MIN_SECTIONS members are left out."""
    runs, group, used = [], [], 0
    for m in members:
        n = count(m["section"]) + 1
        if group and (used + n > budget or len(group) >= MAX_SECTIONS):
            runs.append(group)
            group, used = [], 0
        group.append(m)
        used += n
    runs.append(group)
    return [run for run in runs if len(run) >= MIN_SECTIONS]


def build(raw: list[dict]) -> dict:
    tok = _tokenizer()

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    members, seen_bodies = [], set()
    for row in raw:
        parsed = summary_and_body(row["doc"])
        if parsed is None:
            continue
        summary, body = parsed
        if body in seen_bodies:  # the same documentation under another name
            continue
        seen_bodies.add(body)
        head = f"{row['qualname']}{row['signature']}"
        section = _cut(f"{head}\n{body}", SECTION_TOKENS, count)
        if not section or section == head:
            continue
        members.append(
            {
                **{k: row[k] for k in ("package", "module", "qualname", "signature")},
                "summary": summary,
                "body": body,
                "section": section,
                "split": split_of(row["module"]),
            }
        )
    dropped = near_duplicate_drops(members)
    members = [m for i, m in enumerate(members) if i not in dropped]

    # Pages: consecutive members of one module, packed up to PAGE_TOKENS.
    pages, by_module = [], defaultdict(list)
    for m in members:
        by_module[m["module"]].append(m)
    for module in sorted(by_module):
        runs = pack(by_module[module], PAGE_TOKENS - count(module) - 8, count)
        for part, run in enumerate(runs, 1):
            pages.append({"module": module, "part": part, "sections": run})

    page_rows, query_rows = [], []
    for page in pages:
        page_id = f"{page['module']}#{page['part']}"
        text = "\n\n".join(s["section"] for s in page["sections"])
        page_rows.append(
            {
                "id": page_id,
                "package": page["sections"][0]["package"],
                "module": page["module"],
                "split": split_of(page["module"]),
                "title": f"{page['module']} ({page['part']})",
                "text": text,
                "members": [s["qualname"] for s in page["sections"]],
            }
        )
        for s in page["sections"]:
            query_rows.append(
                {
                    "id": f"q:{page['module']}.{s['qualname']}",
                    "split": split_of(page["module"]),
                    "text": s["summary"],
                    "page": page_id,
                    "member": s["qualname"],
                }
            )
    # Word-for-word filters: a query found in any page, or shared with another member's summary.
    folded_pages = [f" {fold(p['title'] + ' ' + p['text'])} " for p in page_rows]
    postings: dict[str, set[int]] = defaultdict(set)
    for i, text in enumerate(folded_pages):
        for word in set(text.split()):
            postings[word].add(i)
    summary_count: dict[str, int] = defaultdict(int)
    for m in members:
        summary_count[fold(m["summary"])] += 1
    kept = []
    for q in query_rows:
        f = fold(q["text"])
        words = f.split()
        holding = set.intersection(*(postings.get(w, set()) for w in words)) if words else set()
        if summary_count[f] > 1 or any(f" {f} " in folded_pages[i] for i in holding):
            continue
        kept.append(q)
    page_tokens = {p["id"]: count(p["title"] + "\n" + p["text"]) for p in page_rows}
    for p in page_rows:
        p["tokens"] = page_tokens[p["id"]]
    return {"pages": page_rows, "queries": kept}


# ---------------------------------------------------------------- files


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with gzip.GzipFile(path, "wb", mtime=0) as handle:
        for row in rows:
            handle.write((json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode())


def read_jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def sha256_of(path: Path) -> str:
    """Of the uncompressed content, so that the digest does not depend on the zlib build."""
    with gzip.open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def write_build(out: Path, data: dict) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("pages", "queries"):
        _write_jsonl(out / f"{name}.jsonl.gz", data[name])
    return {f"{n}.jsonl.gz": sha256_of(out / f"{n}.jsonl.gz") for n in ("pages", "queries")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["extract", "build", "all"])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--raw", type=Path, default=None, help="snapshot (default OUT/raw.jsonl.gz)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    source_path = args.out / "SOURCE.json"
    meta = json.loads(source_path.read_text()) if source_path.exists() else {}
    if args.stage in ("extract", "all"):
        rows, versions = extract()
        _write_jsonl(args.out / "raw.jsonl.gz", rows)
        meta.update(
            {
                "source": "docstrings of the Python standard library and installed libraries",
                "versions": versions,
                "licenses": LICENSES,
                "members_per_package": {
                    k: sum(1 for r in rows if r["package"] == k) for k in LICENSES
                },
                "script": "tasks/build_libdocs.py",
            }
        )
    if args.stage in ("build", "all"):
        raw = args.raw or args.out / "raw.jsonl.gz"
        data = build(read_jsonl(raw))
        meta["sha256"] = {
            "raw.jsonl.gz": sha256_of(raw),
            **write_build(args.out, data),
        }
        splits = ("train", "dev", "test")
        meta["pages_per_split"] = {s: sum(p["split"] == s for p in data["pages"]) for s in splits}
        meta["queries_per_split"] = {
            s: sum(q["split"] == s for q in data["queries"]) for s in splits
        }
        test_pages = meta["pages_per_split"]["test"]
        test = [q for q in data["queries"] if q["split"] == "test"]
        n = {t: sum(task_of(q["id"]) == t for q in test) for t in ("corpus", "lists")}
        meta["test_tasks"] = {
            "corpus": {"queries": n["corpus"], "corpus": test_pages, "qrels": n["corpus"]},
            "lists": {"queries": n["lists"], "corpus": test_pages, "qrels": n["lists"]},
        }
        quick = sorted((p["id"] for p in data["pages"] if p["split"] == "test"), key=stable_rank)[
            :QUICK_PAGES
        ]
        in_quick = {t: sum(q["page"] in quick for q in test if task_of(q["id"]) == t) for t in n}
        meta["quick_tasks"] = {
            t: {"queries": in_quick[t], "corpus": len(quick), "qrels": in_quick[t]} for t in n
        }
        meta["modules_per_split"] = {
            s: sorted({p["module"] for p in data["pages"] if p["split"] == s}) for s in splits
        }
    source_path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    print(json.dumps({k: meta.get(k) for k in ("pages_per_split", "queries_per_split")}))


if __name__ == "__main__":
    main()
