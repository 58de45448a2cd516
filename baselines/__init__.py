"""Encoders that implement the harness protocol: MetaEmbed, single-vector and ColBERT-style models.

`MODELS` is the table the registry reads (`python -m harness list models`): names, factories as
"module:attr" strings and static metadata, so that listing imports no model code.
"""

from harness.benchmark import ModelEntry

_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
_PAPER_BUDGETS = "1x1,2x4,4x8,8x16,16x64"
# MiniLM-based entries read up to 512 text tokens, so no libdocs page is cut (MetaEmbed's 80
# meta slots come on top, within the 512 positions: 432 text tokens, above the longest page).
_MINILM_DEFAULTS = {"backbone": _MINILM, "max_length": 512}

MODELS: list[ModelEntry] = [
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
