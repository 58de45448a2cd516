"""ViDoRe v1, v2 and v3: visual document retrieval (text queries against page images).

Specs are data; two loaders hold the logic: BEIR format (corpus / queries / qrels configs, as
mteb reads them) and the v1 QA format with vidore-benchmark's rules. Revisions are the ones
mteb pins; published counts flag partial or different downloads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from harness.benchmark import AggregateTable, Column, Group, per_task_table
from harness.errors import HarnessError
from harness.hub import dataset_root, image_reference, parquet_files, pick_column, read_rows
from harness.protocol import Item
from harness.task import DatasetRef, TaskData, TaskSpec

log = logging.getLogger(__name__)

SPLIT = "test"
# Queries carry a `language` column in v2 and v3; mteb scores each language separately.
LANGUAGE_COLUMN = "language"


def load_beir(spec: TaskSpec, data_dir: Path | None) -> TaskData:
    """corpus (corpus-id, image), queries (query-id, query[, language]), qrels (query-id, corpus-id, score)."""
    root = dataset_root(spec, data_dir)
    corpus_files = parquet_files(root, "corpus", SPLIT)
    query_files = parquet_files(root, "queries", SPLIT)
    qrel_files = parquet_files(root, "qrels", SPLIT)

    cid_col = pick_column(corpus_files, "corpus-id", "corpus_id")
    candidates = [
        Item(str(row[cid_col]), image=image_reference(row["image"], root))
        for row in read_rows(corpus_files, [cid_col, "image"])
    ]
    qid_col = pick_column(query_files, "query-id", "query_id")
    query_rows = read_rows(query_files, [qid_col, "query"], optional=[LANGUAGE_COLUMN])
    instruction = spec.options.get("instruction")
    queries = [Item(str(r[qid_col]), text=r["query"], instruction=instruction) for r in query_rows]

    q_col = pick_column(qrel_files, "query-id", "query_id")
    c_col = pick_column(qrel_files, "corpus-id", "corpus_id")
    qrels: dict[str, dict[str, int]] = {}
    for row in read_rows(qrel_files, [q_col, c_col, "score"]):
        qrels.setdefault(str(row[q_col]), {})[str(row[c_col])] = int(row["score"])

    groups = None
    if spec.options.get("by_language") and query_rows and LANGUAGE_COLUMN in query_rows[0]:
        groups = {}
        for row in query_rows:
            groups.setdefault(str(row[LANGUAGE_COLUMN]), []).append(str(row[qid_col]))
    known = {c.id for c in candidates}
    dangling = sum(1 for judged in qrels.values() for c in judged if c not in known)
    notes = [f"{dangling} qrels point at pages missing from the corpus"] if dangling else []
    return TaskData(
        queries=queries, candidates=candidates, qrels=qrels, notes=notes, query_groups=groups
    )


def load_qa(spec: TaskSpec, data_dir: Path | None) -> TaskData:
    """vidore-benchmark's QA evaluator: one row per (query, page); queries deduplicated by
    exact string (first occurrence, None dropped); the relevant page of a repeated query is the
    one on its last row; the corpus is the unique image filenames; a page's score below 0 counts
    as 0 except for the first row's page (its results dict is filled with
    `max(results.get(filename, 0), score)` after the first passage)."""
    root = dataset_root(spec, data_dir)
    files = parquet_files(root, None, SPLIT)
    rows = read_rows(files, ["query", "image", "image_filename"])
    pages: dict[str, Item] = {}
    relevant: dict[str, str] = {}
    order: list[str] = []
    for index, row in enumerate(rows):
        name = row["image_filename"]
        if name is None:
            raise HarnessError(
                f"{spec.dataset.path} row {index} has no image_filename ({files[0]})"
            )
        if name not in pages:
            pages[name] = Item(name, image=image_reference(row["image"], root))
        query = row["query"]
        if query is None:
            continue
        if query not in relevant:
            order.append(query)
        relevant[query] = name
    queries = [
        Item(f"q{i}", text=q, instruction=spec.options.get("instruction"))
        for i, q in enumerate(order)
    ]
    qrels = {f"q{i}": {relevant[q]: 1} for i, q in enumerate(order)}
    return TaskData(
        queries=queries,
        candidates=list(pages.values()),
        qrels=qrels,
        floor_scores_except=next(iter(pages), None),
    )


# mteb's name for each task (its TaskMetadata.name), at the revisions pinned here.
MTEB_NAMES = {
    "vidore-v1-arxivqa": "VidoreArxivQARetrieval",
    "vidore-v1-docvqa": "VidoreDocVQARetrieval",
    "vidore-v1-infovqa": "VidoreInfoVQARetrieval",
    "vidore-v1-tabfquad": "VidoreTabfquadRetrieval",
    "vidore-v1-tatdqa": "VidoreTatdqaRetrieval",
    "vidore-v1-shiftproject": "VidoreShiftProjectRetrieval",
    "vidore-v1-syntheticdocqa-ai": "VidoreSyntheticDocQAAIRetrieval",
    "vidore-v1-syntheticdocqa-energy": "VidoreSyntheticDocQAEnergyRetrieval",
    "vidore-v1-syntheticdocqa-government": "VidoreSyntheticDocQAGovernmentReportsRetrieval",
    "vidore-v1-syntheticdocqa-healthcare": "VidoreSyntheticDocQAHealthcareIndustryRetrieval",
    "vidore-v2-esg-human": "Vidore2ESGReportsHLRetrieval",
    "vidore-v2-economics": "Vidore2EconomicsReportsRetrieval",
    "vidore-v2-biomedical": "Vidore2BioMedicalLecturesRetrieval",
    "vidore-v2-esg": "Vidore2ESGReportsRetrieval",
    "vidore-v3-hr": "Vidore3HrRetrieval",
    "vidore-v3-finance-en": "Vidore3FinanceEnRetrieval",
    "vidore-v3-industrial": "Vidore3IndustrialRetrieval",
    "vidore-v3-pharmaceuticals": "Vidore3PharmaceuticalsRetrieval",
    "vidore-v3-computer-science": "Vidore3ComputerScienceRetrieval",
    "vidore-v3-energy": "Vidore3EnergyRetrieval",
    "vidore-v3-physics": "Vidore3PhysicsRetrieval",
    "vidore-v3-finance-fr": "Vidore3FinanceFrRetrieval",
}


def _v1(name: str, repo: str, revision: str, counts: dict[str, int], description: str) -> TaskSpec:
    return TaskSpec(
        name=f"vidore-v1-{name}",
        mteb_name=MTEB_NAMES[f"vidore-v1-{name}"],
        benchmark="vidore-v1",
        kind="corpus",
        main_metric="ndcg_at_5",
        dataset=DatasetRef(f"mteb/{repo}", revision=revision),
        loader="harness.tasks.vidore:load_beir",
        category="document-retrieval",
        description=description,
        languages=("en",),
        modalities=("text", "image"),
        hub_snapshot=True,
        counts=counts,
    )


V1 = [
    _v1(
        "arxivqa",
        "arxivqa_test_subsampled_beir",
        "179762404662be6bf48c30b4fb2b2ef8c6891290",
        {"queries": 500, "corpus": 500, "qrels": 500},
        "figures from arXiv papers",
    ),
    _v1(
        "docvqa",
        "docvqa_test_subsampled_beir",
        "e78cd130055fcb8d69bb0ff4115c4712a157f3d3",
        {"queries": 451, "corpus": 500, "qrels": 500},
        "industry documents (DocVQA)",
    ),
    _v1(
        "infovqa",
        "infovqa_test_subsampled_beir",
        "74d396242cc281c021eeb38d0ee5f6f30afc1fad",
        {"queries": 494, "corpus": 500, "qrels": 500},
        "infographics (InfoVQA)",
    ),
    _v1(
        "tabfquad",
        "tabfquad_test_subsampled_beir",
        "24a4541c4c461f5ff4f4af4e97ec820715281a06",
        {"queries": 280, "corpus": 70, "qrels": 280},
        "tables in French reports",
    ),
    _v1(
        "tatdqa",
        "tatdqa_test_beir",
        "dc7924ec102addd7f85c1ccfdd8625848179f615",
        {"queries": 1646, "corpus": 277, "qrels": 1663},
        "financial reports with tables",
    ),
    _v1(
        "shiftproject",
        "shiftproject_test_beir",
        "78e6f5ad3bbc1af50ae9c0f006f57462213269fb",
        {"queries": 100, "corpus": 1000, "qrels": 100},
        "Shift Project energy reports (French)",
    ),
    _v1(
        "syntheticdocqa-ai",
        "syntheticDocQA_artificial_intelligence_test_beir",
        "12c5b7a81fc19d66f1844642acdb88e8ad79af16",
        {"queries": 100, "corpus": 968, "qrels": 100},
        "synthetic questions, artificial intelligence",
    ),
    _v1(
        "syntheticdocqa-energy",
        "syntheticDocQA_energy_test_beir",
        "eda52c9a0519252cfaacb7ae5e5da516b7d4b8cb",
        {"queries": 100, "corpus": 977, "qrels": 100},
        "synthetic questions, energy",
    ),
    _v1(
        "syntheticdocqa-government",
        "syntheticDocQA_government_reports_test_beir",
        "ec534abea699035a18f9fd76f215277de9db9600",
        {"queries": 100, "corpus": 972, "qrels": 100},
        "synthetic questions, government reports",
    ),
    _v1(
        "syntheticdocqa-healthcare",
        "syntheticDocQA_healthcare_industry_test_beir",
        "81d53880628d641aaf7365f3b2e65f57c814ecca",
        {"queries": 100, "corpus": 965, "qrels": 100},
        "synthetic questions, healthcare industry",
    ),
]

# The QA-format repos behind the original ViDoRe v1 leaderboard. Only arxivqa's revision is
# known to be pinned by a public evaluator; the others follow the repo's main branch.
_QA = {
    "arxivqa": ("vidore/arxivqa_test_subsampled", "fe2b0e055eaac82d8f6801ebc8e85d8832248133"),
    "docvqa": ("vidore/docvqa_test_subsampled", None),
    "infovqa": ("vidore/infovqa_test_subsampled", None),
    "tabfquad": ("vidore/tabfquad_test_subsampled", None),
    "tatdqa": ("vidore/tatdqa_test", None),
    "shiftproject": ("vidore/shiftproject_test", None),
    "syntheticdocqa-ai": ("vidore/syntheticDocQA_artificial_intelligence_test", None),
    "syntheticdocqa-energy": ("vidore/syntheticDocQA_energy_test", None),
    "syntheticdocqa-government": ("vidore/syntheticDocQA_government_reports_test", None),
    "syntheticdocqa-healthcare": ("vidore/syntheticDocQA_healthcare_industry_test", None),
}
V1_QA = [
    TaskSpec(
        name=f"vidore-v1-qa-{name}",
        benchmark="vidore-v1-qa",
        kind="corpus",
        main_metric="ndcg_at_5",
        dataset=DatasetRef(repo, revision=revision),
        loader="harness.tasks.vidore:load_qa",
        category="document-retrieval",
        description="QA format, vidore-benchmark rules (query dedup, last row's page relevant)",
        languages=("en",),
        modalities=("text", "image"),
        hub_snapshot=True,
    )
    for name, (repo, revision) in _QA.items()
]


def _page_task(benchmark: str, name: str, **fields: Any) -> TaskSpec:
    """A ViDoRe v2/v3 task: page images retrieved for text queries, one hub snapshot."""
    return TaskSpec(
        name=f"{benchmark}-{name}",
        mteb_name=MTEB_NAMES[f"{benchmark}-{name}"],
        benchmark=benchmark,
        kind="corpus",
        category="document-retrieval",
        modalities=("text", "image"),
        hub_snapshot=True,
        **fields,
    )


def _v2(
    name: str,
    *,
    repo: str,
    revision: str,
    queries: int,
    corpus: int,
    languages: tuple[str, ...],
    description: str,
) -> TaskSpec:
    return _page_task(
        "vidore-v2",
        name,
        dataset=DatasetRef(f"vidore/{repo}", revision=revision),
        main_metric="ndcg_at_5",
        loader="harness.tasks.vidore:load_beir",
        description=description,
        languages=languages,
        counts={"queries": queries, "corpus": corpus},
        options={"by_language": len(languages) > 1},
    )


_MULTI = ("english", "french", "spanish", "german")
V2 = [
    _v2(
        "esg-human",
        repo="esg_reports_human_labeled_v2",
        revision="6d467dedb09a75144ede1421747e47cf036857dd",
        queries=52,
        corpus=1538,
        languages=("english",),
        description="ESG reports of restaurant chains, human-labelled queries",
    ),
    _v2(
        "economics",
        repo="economics_reports_v2",
        revision="b3e3a04b07fbbaffe79be49dabf92f691fbca252",
        queries=232,
        corpus=452,
        languages=_MULTI,
        description="macroeconomics reports; queries in 4 languages",
    ),
    _v2(
        "biomedical",
        repo="biomedical_lectures_v2",
        revision="a29202f0da409034d651614d87cd8938d254e2ea",
        queries=640,
        corpus=1016,
        languages=_MULTI,
        description="MIT biomedical lecture slides; queries in 4 languages",
    ),
    _v2(
        "esg",
        repo="esg_reports_v2",
        revision="0542c0d03da0ec1c8cbc517c8d78e7e95c75d3d3",
        queries=228,
        corpus=1538,
        languages=_MULTI,
        description="ESG reports of restaurant chains, synthetic queries in 4 languages",
    ),
]


def load_beir_subsets(spec: TaskSpec, data_dir: Path | None) -> TaskData:
    """mteb's multilingual retrieval layout (ViDoRe v3 `*_mteb_format`): for each language
    subset L, configs `L-corpus` (`id` or `_id`, `image`), `L-queries` (`id` or `_id`, `text`)
    and `L-qrels` (`query-id`, `corpus-id`, `score`), split test. As mteb loads each subset, a
    subset keeps only the queries its qrels judge; the languages become query groups. The
    subsets share one corpus: a union that differs from each subset's corpus is noted (and
    flagged by the size check) since mteb scores each subset against its own."""
    root = dataset_root(spec, data_dir)
    subsets = list(spec.options["subsets"])
    pages: dict[str, Item] = {}
    corpus_ids: dict[str, set[str]] = {}
    loaded: dict[str, tuple[list[tuple[str, str]], dict[str, dict[str, int]]]] = {}
    for lang in subsets:
        corpus_files = parquet_files(root, f"{lang}-corpus", SPLIT)
        cid_col = pick_column(corpus_files, "id", "_id")
        ids = corpus_ids.setdefault(lang, set())
        for row in read_rows(corpus_files, [cid_col, "image"]):
            cid = str(row[cid_col])
            ids.add(cid)
            if cid not in pages:
                pages[cid] = Item(cid, image=image_reference(row["image"], root))
        qrel_files = parquet_files(root, f"{lang}-qrels", SPLIT)
        judged: dict[str, dict[str, int]] = {}
        for row in read_rows(qrel_files, ["query-id", "corpus-id", "score"]):
            judged.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row["score"])
        query_files = parquet_files(root, f"{lang}-queries", SPLIT)
        qid_col = pick_column(query_files, "id", "_id")
        rows = [
            (str(r[qid_col]), r["text"])
            for r in read_rows(query_files, [qid_col, "text"])
            if str(r[qid_col]) in judged
        ]
        loaded[lang] = (rows, judged)
    all_ids = [qid for rows, _ in loaded.values() for qid, _ in rows]
    # Query ids are distinct across subsets in the published data; if not, they are qualified.
    qualify = len(set(all_ids)) != len(all_ids)
    instruction = spec.options.get("instruction")
    queries: list[Item] = []
    qrels: dict[str, dict[str, int]] = {}
    groups: dict[str, list[str]] = {}
    for lang, (rows, judged) in loaded.items():
        for qid, text in rows:
            key = f"{lang}/{qid}" if qualify else qid
            queries.append(Item(key, text=text, instruction=instruction))
            qrels[key] = judged[qid]
            groups.setdefault(lang, []).append(key)
    notes = []
    if qualify:
        notes.append("query ids repeat across language subsets; they are stored as <language>/<id>")
    if any(ids != corpus_ids[subsets[0]] for ids in corpus_ids.values()):
        notes.append(
            f"the language subsets' corpora differ; {len(pages)} pages (their union) were scored"
        )
    dangling = sum(1 for judged in qrels.values() for c in judged if c not in pages)
    if dangling:
        notes.append(f"{dangling} qrels point at pages missing from the corpus")
    return TaskData(
        queries=queries,
        candidates=list(pages.values()),
        qrels=qrels,
        notes=notes,
        query_groups=groups,
    )


# mteb's ViDoRe(v3) tasks (Vidore3<Name>Retrieval): the `*_mteb_format` repos at the revisions
# mteb pins, six language subsets each, the same number of queries in every language. The
# benchmark's Telecom and Nuclear sets are private (held out by mteb) and not registered here.
V3_LANGUAGES = ("english", "french", "spanish", "german", "italian", "portuguese")


def _v3(
    name: str, *, repo: str, revision: str, per_language: int, corpus: int, description: str
) -> TaskSpec:
    return _page_task(
        "vidore-v3",
        name,
        dataset=DatasetRef(f"vidore/{repo}_mteb_format", revision=revision),
        main_metric="ndcg_at_10",
        loader="harness.tasks.vidore:load_beir_subsets",
        description=description,
        languages=V3_LANGUAGES,
        counts={"queries": per_language * len(V3_LANGUAGES), "corpus": corpus},
        options={"subsets": V3_LANGUAGES},
    )


V3 = [
    _v3(
        "hr",
        repo="vidore_v3_hr",
        revision="bc7d43d64815ed30f664168c8052106484aba7fd",
        per_language=318,
        corpus=1110,
        description="human resources documents",
    ),
    _v3(
        "finance-en",
        repo="vidore_v3_finance_en",
        revision="fa78cb14152b3dde8c5defdc4e3ddf50de69dfeb",
        per_language=309,
        corpus=2942,
        description="financial reports (English)",
    ),
    _v3(
        "industrial",
        repo="vidore_v3_industrial",
        revision="f732b725cf4a70803210edfe265a04f8bd5328f6",
        per_language=283,
        corpus=5244,
        description="industrial maintenance documents",
    ),
    _v3(
        "pharmaceuticals",
        repo="vidore_v3_pharmaceuticals",
        revision="237ed4f43c7fb3c4df07ec4e9dd0a4366be555b0",
        per_language=364,
        corpus=2313,
        description="pharmaceutical documents",
    ),
    _v3(
        "computer-science",
        repo="vidore_v3_computer_science",
        revision="fb7fb69f81f7db62790f40494124b8ad22b424ab",
        per_language=215,
        corpus=1360,
        description="computer science textbooks",
    ),
    _v3(
        "energy",
        repo="vidore_v3_energy",
        revision="84fca99e5978604bae30f2436eacb6dbaa0532e9",
        per_language=308,
        corpus=2225,
        description="energy sector documents",
    ),
    _v3(
        "physics",
        repo="vidore_v3_physics",
        revision="2c18ef90ab3ef93a9d86ecc6521cdae2a29f8300",
        per_language=302,
        corpus=1674,
        description="physics course material",
    ),
    _v3(
        "finance-fr",
        repo="vidore_v3_finance_fr",
        revision="8a2adfda85a7967c7252129703d9b3c7c9f038a9",
        per_language=320,
        corpus=2384,
        description="financial reports (French)",
    ),
]

TASKS = [*V1, *V1_QA, *V2, *V3]

GROUPS = [
    Group(
        "vidore",
        "ViDoRe v1, v2 and v3",
        lambda t: t.benchmark in ("vidore-v1", "vidore-v2", "vidore-v3"),
    ),
    Group("vidore-v1", "ViDoRe v1, BEIR format (nDCG@5)", lambda t: t.benchmark == "vidore-v1"),
    Group(
        "vidore-v1-qa",
        "ViDoRe v1, QA format with vidore-benchmark's rules (nDCG@5)",
        lambda t: t.benchmark == "vidore-v1-qa",
    ),
    Group("vidore-v2", "ViDoRe v2 (nDCG@5)", lambda t: t.benchmark == "vidore-v2"),
    Group("vidore-v3", "ViDoRe v3 (nDCG@10)", lambda t: t.benchmark == "vidore-v3"),
]

TABLES = [
    per_task_table("ViDoRe v1 (nDCG@5)", V1, order=20),
    per_task_table("ViDoRe v1, QA format (nDCG@5)", V1_QA, order=30),
    # The MetaEmbed paper's seven v2 columns: the pooled multilingual queries of each set, and
    # the English queries alone of three of them.
    AggregateTable(
        "ViDoRe v2 (nDCG@5)",
        "vidore-v2",
        (
            Column("ESG-Human", ("vidore-v2-esg-human",)),
            Column("Eco-Mul", ("vidore-v2-economics",)),
            Column("Bio-Mul", ("vidore-v2-biomedical",)),
            Column("ESG-Syn-Mul", ("vidore-v2-esg",)),
            Column("Bio", ("vidore-v2-biomedical",), "ndcg_at_5_english"),
            Column("ESG-Syn", ("vidore-v2-esg",), "ndcg_at_5_english"),
            Column("Eco", ("vidore-v2-economics",), "ndcg_at_5_english"),
        ),
        reported="vidore_v2",
        order=40,
    ),
    per_task_table("ViDoRe v3 (nDCG@10)", V3, order=50),
]
