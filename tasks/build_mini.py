"""Build the offline `mini` benchmark from the docstrings of CPython's standard library.

Each page is one documented function, class or method: its qualified name and signature, then
its docstring with the first sentence (the summary) removed. A query is that summary sentence;
its one relevant page is the page it was cut from, among the sibling pages of the same module,
so the words of the name and the topic recur across many pages and lexical overlap alone does
not solve the task. Train / dev / test are disjoint by module.

The text is the documentation shipped inside CPython (Python Software Foundation License 2.0),
NumPy and SciPy (BSD-3-Clause), read from the interpreter and packages that run this script;
the snapshot in tasks/data/mini/ (see SOURCE.json for versions and licences) was made with
`python tasks/build_mini.py`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import inspect
import json
import platform
import re
import sys
import warnings
from pathlib import Path

OUT = Path(__file__).parent / "data" / "mini"

MODULES = [
    "abc",
    "argparse",
    "array",
    "ast",
    "asyncio",
    "base64",
    "bdb",
    "binascii",
    "bisect",
    "bz2",
    "calendar",
    "cmd",
    "code",
    "codecs",
    "collections",
    "concurrent.futures",
    "configparser",
    "contextlib",
    "copy",
    "csv",
    "ctypes",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "dis",
    "doctest",
    "email",
    "email.message",
    "email.utils",
    "enum",
    "filecmp",
    "fileinput",
    "fnmatch",
    "fractions",
    "ftplib",
    "functools",
    "gc",
    "getopt",
    "gettext",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "html.parser",
    "http.client",
    "http.cookies",
    "http.server",
    "imaplib",
    "importlib",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "keyword",
    "linecache",
    "locale",
    "logging",
    "logging.handlers",
    "lzma",
    "mailbox",
    "math",
    "mimetypes",
    "mmap",
    "multiprocessing",
    "netrc",
    "numbers",
    "operator",
    "optparse",
    "os",
    "os.path",
    "pathlib",
    "pdb",
    "pickle",
    "pickletools",
    "pkgutil",
    "platform",
    "plistlib",
    "poplib",
    "pprint",
    "profile",
    "pstats",
    "queue",
    "quopri",
    "random",
    "re",
    "reprlib",
    "sched",
    "secrets",
    "select",
    "selectors",
    "shelve",
    "shlex",
    "shutil",
    "signal",
    "smtplib",
    "socket",
    "socketserver",
    "sqlite3",
    "ssl",
    "stat",
    "statistics",
    "string",
    "struct",
    "subprocess",
    "symtable",
    "sysconfig",
    "tabnanny",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "timeit",
    "tokenize",
    "trace",
    "traceback",
    "types",
    "typing",
    "unicodedata",
    "unittest",
    "unittest.mock",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "wave",
    "weakref",
    "xml.dom.minidom",
    "xml.etree.ElementTree",
    "xml.sax",
    "zipfile",
    "zipimport",
    "zlib",
    "zoneinfo",
    "asyncio.events",
    "asyncio.streams",
    "asyncio.tasks",
    "asyncio.locks",
    "asyncio.queues",
    "collections.abc",
    "email.headerregistry",
    "email.policy",
    "http.cookiejar",
    "importlib.metadata",
    "importlib.resources",
    "json.decoder",
    "json.encoder",
    "logging.config",
    "multiprocessing.pool",
    "multiprocessing.managers",
    "pydoc",
    "unittest.case",
    "urllib.robotparser",
    "xml.dom.pulldom",
    "xmlrpc.client",
    "xmlrpc.server",
    "idlelib.editor",
    "idlelib.pyshell",
    "lib2to3.pytree",
]
# Installed scientific packages (BSD-3-Clause documentation).
SCIENTIFIC = [
    "numpy",
    "numpy.linalg",
    "numpy.fft",
    "numpy.random",
    "numpy.ma",
    "numpy.polynomial.polynomial",
    "scipy.stats",
    "scipy.linalg",
    "scipy.optimize",
    "scipy.signal",
    "scipy.sparse",
    "scipy.sparse.linalg",
    "scipy.interpolate",
    "scipy.integrate",
    "scipy.spatial",
    "scipy.ndimage",
    "scipy.cluster.hierarchy",
    "scipy.io",
    "scipy.fft",
    "scipy.special",
]
LICENSES = {
    "stdlib": "Python Software Foundation License Version 2 (CPython documentation)",
    "numpy": "BSD-3-Clause (NumPy documentation)",
    "scipy": "BSD-3-Clause (SciPy documentation)",
}

SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)(\s*->\s*.*)?$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`'\"])")


def split_of(module: str) -> str:
    """Disjoint by module: a stable hash puts ~50% of modules in train, 10% in dev, 40% in test."""
    bucket = int(hashlib.sha256(module.encode()).hexdigest(), 16) % 10
    return "test" if bucket < 4 else "dev" if bucket == 4 else "train"


def summary_and_body(doc: str) -> tuple[str, str] | None:
    lines = doc.strip().splitlines()
    while lines and SIGNATURE_LINE.match(lines[0].strip()):
        lines = lines[1:]
    while lines and (not lines[0].strip() or set(lines[0].strip()) <= {"-"}):
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
    if not (20 <= len(summary) <= 200) or not summary.endswith("."):
        return None
    if len(body) < 80:
        return None
    return summary, body[:1500]


def signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def members(module):
    package = module.__name__.split(".")[0]
    for name, obj in sorted(vars(module).items()):
        owner = getattr(obj, "__module__", None) or ""
        if name.startswith("_") or not (
            owner == module.__name__
            or (package in ("numpy", "scipy") and owner.startswith(package))
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


def build() -> dict:
    pages, queries, seen = [], [], set()
    for module_name in (*MODULES, *SCIENTIFIC):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(module_name)
        except Exception:  # a module missing from this build of Python
            continue
        split = split_of(module_name)
        for qualname, obj in members(module):
            doc = inspect.getdoc(obj)
            if not doc:
                continue
            parsed = summary_and_body(doc)
            if parsed is None:
                continue
            summary, body = parsed
            if body in seen:
                continue
            seen.add(body)
            page_id = f"{module_name}.{qualname}"
            title = f"{module_name}.{qualname}{signature(obj)}"
            source = (
                module_name.split(".")[0]
                if module_name.split(".")[0] in ("numpy", "scipy")
                else "stdlib"
            )
            pages.append(
                {
                    "id": page_id,
                    "module": module_name,
                    "split": split,
                    "title": title,
                    "text": body,
                    "source": source,
                }
            )
            queries.append({"id": f"q:{page_id}", "split": split, "text": summary, "page": page_id})
    return {"pages": pages, "queries": queries}


def main() -> None:
    data = build()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in ("pages", "queries"):
        with gzip.GzipFile(OUT / f"{name}.jsonl.gz", "wb", mtime=0) as handle:
            for row in data[name]:
                handle.write((json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode())
    counts = {s: sum(1 for p in data["pages"] if p["split"] == s) for s in ("train", "dev", "test")}
    import numpy
    import scipy

    meta = {
        "source": "docstrings of the CPython standard library, NumPy and SciPy",
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "licenses": LICENSES,
        "pages_per_source": {
            k: sum(1 for p in data["pages"] if p["source"] == k) for k in LICENSES
        },
        "script": "tasks/build_mini.py",
        "pages_per_split": counts,
        "modules_per_split": {
            s: sorted({p["module"] for p in data["pages"] if p["split"] == s}) for s in counts
        },
    }
    (OUT / "SOURCE.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
