"""Tiny, randomly initialised Hugging Face model directories, laid out like hub model repos.

Every builder writes config, safetensors weights, tokenizer and (image) processor files into
`path` and returns it, so the directory loads offline with the usual `from_pretrained` calls.
Vocabularies come from a small generated English-like corpus (BPE merges learnt with the
`tokenizers` trainer; WordPiece / Unigram pieces ranked by frequency, ties alphabetical), and
weights from a fixed seed (the caller's torch RNG state is left untouched), so every build
writes byte-identical files. Models have hidden size 32-64 and one or two layers, so building
everything takes a few seconds on a CPU.

transformers 5.x: `AutoProcessor` for Qwen2-VL / Qwen2.5-VL also loads the video processor,
which needs torchvision; without it use `AutoTokenizer` + `AutoImageProcessor` on the same
directory. ColQwen2, CLIP and SigLIP processors have no video processor.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

SEED = 0
QWEN_BPE_SIZE = 640  # byte alphabet + merges; the special tokens follow, as in the real Qwen vocab
# The added tokens of Qwen2-VL, in the hub order: relative ids match the real vocab
# (<|endoftext|> first, <|vision_start|> at +9, <|image_pad|> at +12, <|video_pad|> at +13).
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Written for these fixtures (not Qwen's own template): Qwen turn markers, one vision block per
# image / video content part, no default system prompt.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'video' %}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
QWEN_PROCESSORS = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor"}
# Gemma's leading special tokens (ids 0-4) and the tokens PaliGemma appends after the Gemma vocab,
# in the hub order: 1024 <locNNNN>, 128 <segNNN>, then <image> (the config's image_token_index).
GEMMA_SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
PALIGEMMA_EXTRA_TOKENS = [f"<loc{i:04d}>" for i in range(1024)] + [
    f"<seg{i:03d}>" for i in range(128)
]
PALIGEMMA_IMAGE_TOKEN = "<image>"
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]

_COMMON_WORDS = (
    "the a an of and to in is on for with by from at as that this these what which how many "
    "page pages chart table figure report revenue growth year market share price total sales "
    "image photo picture dog cat bird car tree house street river mountain red blue green "
    "yellow black white small large first second third left right top bottom shows show "
    "compare describe find document slide section title text number percent million value "
    "energy water food health school city country company people data model results method"
)
_WORDS = _COMMON_WORDS.split()
_ONSETS = ["b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "w", "st", "tr"]
_ONSETS += ["ch", "sh", "th", "pl", "gr"]
_VOWELS = ["a", "e", "i", "o", "u", "ea", "ou", "ai", "io"]
_CODAS = ["", "", "n", "r", "s", "t", "l", "nd", "ng", "ck", "st"]


def corpus(n_lines: int = 400, seed: int = SEED) -> list[str]:
    """Deterministic English-like sentences: common words, made-up words, numbers, punctuation."""
    rng = random.Random(seed)

    def word() -> str:
        if rng.random() < 0.6:
            return rng.choice(_WORDS)
        syllables = rng.randint(1, 3)
        return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + (
            rng.choice(_CODAS)
        )

    lines = []
    for _ in range(n_lines):
        words = [word() for _ in range(rng.randint(4, 14))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 2024)))
        if rng.random() < 0.2:
            words[rng.randrange(len(words))] += ","
        sentence = " ".join(words)
        lines.append(sentence[0].upper() + sentence[1:] + rng.choice([".", ".", "?", "!"]))
    return lines


def _word_counts() -> Counter[str]:
    """Lower-cased words and punctuation marks of `corpus()`, with their counts."""
    counts: Counter[str] = Counter()
    for line in corpus():
        counts.update(re.findall(r"\w+|[^\w\s]", line.lower()))
    return counts


def _ranked_items(counts: Counter[str]) -> list[tuple[str, int]]:
    """Most frequent first, ties alphabetical: no dependence on hash order."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _ranked(counts: Counter[str]) -> list[str]:
    return [key for key, _ in _ranked_items(counts)]


def _inner_pieces(words: Counter[str]) -> Counter[str]:
    """Counts of the 2-3 letter pieces that continue a word (not at its start)."""
    pieces: Counter[str] = Counter()
    for word, count in words.items():
        for size in (2, 3):
            for i in range(1, len(word) - size + 1):
                pieces[word[i : i + size]] += count
    return pieces


def _bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins of GPT-2 byte-level BPE, in byte order."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _train_bpe(
    template: Tokenizer, base: list[str], vocab_size: int, **trainer_kw: Any
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """BPE merges learnt on `corpus()` with `template`'s normalizer and pre-tokenizer; the vocab
    is `base` followed by the merge results in merge order (the GPT-2 / Qwen / CLIP layout)."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = template.normalizer
    tok.pre_tokenizer = template.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=_bytes_to_unicode(),
        show_progress=False,
        **trainer_kw,
    )
    tok.train_from_iterator(corpus(), trainer)
    merges = [tuple(m) for m in json.loads(tok.to_str())["model"]["merges"]]
    vocab = {token: i for i, token in enumerate(base)}
    for left, right in merges:
        assert left in vocab and right in vocab, (left, right)
        vocab.setdefault(left + right, len(vocab))
    return vocab, merges


def _write_bpe_files(path: Path, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    """vocab.json + merges.txt next to tokenizer.json, as hub repos ship them."""
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (path / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _update_json(file: Path, **values: Any) -> None:
    data = json.loads(file.read_text(encoding="utf-8"))
    data.update(values)
    file.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _save_model(model_cls: type, config: Any, path: Path, seed: int = SEED) -> None:
    """Random weights from a fixed seed, without disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.eval().save_pretrained(path)


# --------------------------------------------------------------------------- Qwen-VL family


def _qwen_tokenizer(path: Path) -> Any:
    """Byte-level BPE Qwen2 tokenizer with the Qwen-VL special tokens, saved into `path`."""
    from transformers import Qwen2Tokenizer

    template = Qwen2Tokenizer().backend_tokenizer
    vocab, merges = _train_bpe(template, _bytes_to_unicode(), QWEN_BPE_SIZE)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        extra_special_tokens=QWEN_SPECIAL_TOKENS[1:],
        model_max_length=32768,
    )
    tokenizer.eos_token = "<|im_end|>"  # as in the Instruct checkpoints; pad stays <|endoftext|>
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    ids = tokenizer.convert_tokens_to_ids(QWEN_SPECIAL_TOKENS)
    assert ids == list(range(len(vocab), len(vocab) + len(QWEN_SPECIAL_TOKENS))), ids
    tokenizer.save_pretrained(path)
    _write_bpe_files(path, vocab, merges)
    return tokenizer


def _qwen_image_processor(path: Path, processor_class: str) -> Any:
    """Qwen2-VL image processor: 14px patches, 2x2 merge, 4..64 visual tokens per image."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=4 * 28 * 28,
        max_pixels=64 * 28 * 28,
        patch_size=14,
        merge_size=2,
        temporal_patch_size=2,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    image_processor.save_pretrained(path)
    _update_json(
        path / "preprocessor_config.json",
        min_pixels=4 * 28 * 28,
        max_pixels=64 * 28 * 28,
        processor_class=processor_class,
    )
    return image_processor


def _qwen_vl_config(tokenizer: Any, variant: str) -> Any:
    """Tiny Qwen2-VL / Qwen2.5-VL config whose token ids and vocab size match `tokenizer`."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        # head_dim 16: the (temporal, height, width) M-RoPE sections cover its 8 frequencies
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "tie_word_embeddings": True,
    }
    common = {"depth": 1, "num_heads": 2, "patch_size": 14, "temporal_patch_size": 2}
    common["spatial_merge_size"] = 2
    if variant == "qwen2_vl":
        config_cls = Qwen2VLConfig
        vision = {**common, "embed_dim": 32, "mlp_ratio": 2, "hidden_size": 64}
    elif variant == "qwen2_5_vl":
        config_cls = Qwen2_5_VLConfig
        vision = {
            **common,
            "hidden_size": 32,
            "intermediate_size": 64,
            "out_hidden_size": 64,
            "fullatt_block_indexes": [0],
            "window_size": 56,
            "tokens_per_second": 2,
        }
    else:
        raise ValueError(f"unknown Qwen-VL variant {variant!r}")
    return config_cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )


def tiny_qwen2_vl(path: Path, variant: str = "qwen2_vl") -> Path:
    """Qwen2-VL (`variant="qwen2_vl"`) or Qwen2.5-VL (`"qwen2_5_vl"`) conditional-generation
    checkpoint with a Qwen2 BPE tokenizer, chat template and Qwen2-VL image processor."""
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration

    model_cls = {
        "qwen2_vl": Qwen2VLForConditionalGeneration,
        "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
    }.get(variant)
    if model_cls is None:
        raise ValueError(f"unknown Qwen-VL variant {variant!r}")
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _qwen_tokenizer(path)
    _update_json(path / "tokenizer_config.json", processor_class=QWEN_PROCESSORS[variant])
    _qwen_image_processor(path, QWEN_PROCESSORS[variant])
    _save_model(model_cls, _qwen_vl_config(tokenizer, variant), path)
    return path


def tiny_colqwen2(path: Path) -> Path:
    """ColQwen2ForRetrieval (transformers' class) on a tiny Qwen2-VL, 16-dim multi-vectors, with
    the ColQwen2Processor (Qwen2 tokenizer + Qwen2-VL image processor)."""
    from transformers import ColQwen2Config, ColQwen2ForRetrieval, ColQwen2Processor

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _qwen_tokenizer(path)
    image_processor = _qwen_image_processor(path, "ColQwen2Processor")
    ColQwen2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    config = ColQwen2Config(
        vlm_config=_qwen_vl_config(tokenizer, "qwen2_vl").to_dict(), embedding_dim=16
    )
    _save_model(ColQwen2ForRetrieval, config, path)
    return path


# --------------------------------------------------------------------------- PaliGemma / ColPali


def _paligemma_tokenizer() -> Any:
    """Gemma BPE tokenizer (spaces as `▁`, byte fallback, cased) laid out like PaliGemma's: the
    Gemma specials at ids 0-4, the 256 `<0xNN>` byte pieces, corpus characters, learnt merges, then
    the <loc>/<seg> tokens and the special `<image>` token last. Built with the `tokenizers` BPE
    trainer (`GemmaTokenizer` is the fast, sentencepiece-free class; the processor saves it).
    ColPaliProcessor's own `add_tokens(<loc>/<seg>)` then finds every token already present."""
    from transformers import GemmaTokenizer

    template = Tokenizer(models.BPE())
    template.normalizer = normalizers.Replace(" ", "\u2581")
    # learn merges within words (sentencepiece-like "▁word" pieces)
    template.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
    chars = sorted({c for line in corpus() for c in line.replace(" ", "\u2581")})
    base = [*GEMMA_SPECIAL_TOKENS, *(f"<0x{b:02X}>" for b in range(256)), *chars]
    vocab, merges = _train_bpe(template, base, 640)
    for token in [*PALIGEMMA_EXTRA_TOKENS, PALIGEMMA_IMAGE_TOKEN]:
        vocab[token] = len(vocab)
    tokenizer = GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        extra_special_tokens={"image_token": PALIGEMMA_IMAGE_TOKEN},
        model_max_length=512,
    )
    tokenizer.add_tokens(PALIGEMMA_EXTRA_TOKENS)
    ids = tokenizer.convert_tokens_to_ids([*PALIGEMMA_EXTRA_TOKENS, PALIGEMMA_IMAGE_TOKEN])
    assert ids == list(range(len(vocab) - len(ids), len(vocab))) and len(tokenizer) == len(vocab)
    return tokenizer


def tiny_colpali(path: Path) -> Path:
    """ColPaliForRetrieval (transformers' class) on a tiny PaliGemma (Gemma text model: 1 layer,
    hidden 32; SigLIP vision tower: 1 layer, hidden 32, 56px images, 14px patches, so 16 image
    tokens), 16-dim multi-vectors, with the ColPaliProcessor (Gemma BPE tokenizer, see
    `_paligemma_tokenizer`, + SiglipImageProcessor 56x56 with `image_seq_length` 16)."""
    from transformers import ColPaliConfig, ColPaliForRetrieval, ColPaliProcessor, PaliGemmaConfig
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    image_size, patch_size = 56, 14
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _paligemma_tokenizer()
    image_processor = SiglipImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_seq_length=(image_size // patch_size) ** 2,
    )
    size = len(tokenizer)
    processor = ColPaliProcessor(image_processor=image_processor, tokenizer=tokenizer)
    assert len(tokenizer) == size  # every token the processor adds is already in the vocab
    processor.save_pretrained(path)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in GEMMA_SPECIAL_TOKENS}
    hidden = 32
    vlm = PaliGemmaConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "max_position_embeddings": 512,
            "pad_token_id": ids["<pad>"],
            "eos_token_id": ids["<eos>"],
            "bos_token_id": ids["<bos>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": patch_size,
            "vision_use_head": False,
        },
        image_token_index=tokenizer.convert_tokens_to_ids(PALIGEMMA_IMAGE_TOKEN),
        vocab_size=len(tokenizer),
        projection_dim=hidden,
        hidden_size=hidden,
        pad_token_id=ids["<pad>"],
        eos_token_id=ids["<eos>"],
        bos_token_id=ids["<bos>"],
    )
    config = ColPaliConfig(vlm_config=vlm.to_dict(), embedding_dim=16)
    _save_model(ColPaliForRetrieval, config, path)
    return path


# --------------------------------------------------------------------------- text / dual encoders


def tiny_bert(path: Path) -> Path:
    """BertModel (2 layers, hidden 32) with a lower-cased WordPiece vocab.txt of ~400 entries."""
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = _word_counts()
    chars = sorted({c for w in words for c in w})
    tokens = [*specials, *chars, *(f"##{c}" for c in chars if c.isalnum())]
    tokens += [w for w in _ranked(words) if len(w) > 1][:200]
    tokens += [f"##{p}" for p in _ranked(_inner_pieces(words))]
    vocab = {token: i for i, token in enumerate(list(dict.fromkeys(tokens))[:400])}
    (path / "vocab.txt").write_text("".join(f"{t}\n" for t in vocab), encoding="utf-8")
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=128)
    tokenizer.save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=vocab["[PAD]"],
    )
    _save_model(BertModel, config, path)
    return path


def tiny_mpnet(path: Path, max_positions: int = 130) -> Path:
    """MPNetModel (2 layers, hidden 32) with MPNet's special tokens (`<pad>` at id 1, the padding
    index MPNet's positions count from) on the WordPiece vocab of `tiny_bert`. Its position table
    has `max_positions` rows, two more than the tokens it holds, as in MPNet (514 for 512)."""
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizer

    path.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]
    words = _word_counts()
    chars = sorted({c for w in words for c in w})
    tokens = [*specials, *chars, *(f"##{c}" for c in chars if c.isalnum())]
    tokens += [w for w in _ranked(words) if len(w) > 1][:200]
    tokens += [f"##{p}" for p in _ranked(_inner_pieces(words))]
    vocab = {token: i for i, token in enumerate(list(dict.fromkeys(tokens))[:400])}
    (path / "vocab.txt").write_text("".join(f"{t}\n" for t in vocab), encoding="utf-8")
    tokenizer = MPNetTokenizer(vocab=vocab, do_lower_case=True, model_max_length=max_positions - 2)
    tokenizer.save_pretrained(path)
    config = MPNetConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        pad_token_id=vocab["<pad>"],
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
    )
    _save_model(MPNetModel, config, path)
    return path


def _clip_tokenizer(path: Path) -> Any:
    """CLIP BPE (lower-cased, `</w>` word ends) with <|startoftext|> / <|endoftext|> last."""
    from transformers import CLIPTokenizer

    template = CLIPTokenizer().backend_tokenizer
    base = _bytes_to_unicode()
    base += [c + "</w>" for c in base]
    vocab, merges = _train_bpe(template, base, 700, end_of_word_suffix="</w>")
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    tokenizer.save_pretrained(path)
    _write_bpe_files(path, vocab, merges)
    return tokenizer


def tiny_clip(path: Path) -> Path:
    """CLIPModel (1 layer, hidden 32, 30px images, 6px patches, 16-dim projection) with a
    CLIPTokenizer and CLIPImageProcessor (shortest edge 30, centre crop 30)."""
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _clip_tokenizer(path)
    _update_json(path / "tokenizer_config.json", processor_class="CLIPProcessor")
    CLIPImageProcessorPil(
        size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}
    ).save_pretrained(path)
    _update_json(path / "preprocessor_config.json", processor_class="CLIPProcessor")
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 30,
            "patch_size": 6,
        },
        projection_dim=16,
    )
    _save_model(CLIPModel, config, path)
    return path


def _siglip_tokenizer(path: Path) -> Any:
    """SentencePiece-style Unigram tokenizer (Metaspace `▁`, lower-cased, `</s>` appended; pad =
    eos = `</s>`; ids <pad> 0, </s> 1, <unk> 2 as in SigLIP's spiece.model), built from corpus
    frequencies and saved as tokenizer.json with `tokenizer_class: PreTrainedTokenizerFast`:
    the real SiglipTokenizer needs the sentencepiece package and a binary spiece.model."""
    from transformers import PreTrainedTokenizerFast

    words = _word_counts()
    total = sum(words.values())
    pieces: dict[str, float] = dict.fromkeys(["<pad>", "</s>", "<unk>"], 0.0)
    for word in _ranked(words)[:250]:  # whole words, with the word-start marker
        pieces["\u2581" + word] = math.log(words[word] / total)
    for piece, count in _ranked_items(_inner_pieces(words))[:100]:
        pieces.setdefault(piece, math.log(count / total) - 2.0)
    for char in ["\u2581", *sorted({c for w in words for c in w})]:  # every text stays coverable
        pieces.setdefault(char, math.log(1 / total) - 5.0)
    tok = Tokenizer(models.Unigram(list(pieces.items()), unk_id=2))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        eos_token="</s>",
        pad_token="</s>",
        model_max_length=64,
    )
    tokenizer.save_pretrained(path)
    _update_json(
        path / "tokenizer_config.json",
        tokenizer_class="PreTrainedTokenizerFast",
        processor_class="SiglipProcessor",
    )
    return tokenizer


def tiny_siglip(path: Path) -> Path:
    """SiglipModel (1 layer, hidden 32, 30px images, 6px patches, 64 text positions) with a
    SiglipImageProcessor (30x30, mean/std 0.5) and a Unigram fast tokenizer (see
    `_siglip_tokenizer`); `AutoProcessor` gives a SiglipProcessor wrapping both. Pad queries to
    `max_length` (64) as with the real SigLIP: the text tower pools the last position."""
    from transformers import SiglipConfig, SiglipModel
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _siglip_tokenizer(path)
    SiglipImageProcessorPil(size={"height": 30, "width": 30}).save_pretrained(path)
    _update_json(path / "preprocessor_config.json", processor_class="SiglipProcessor")
    config = SiglipConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "bos_token_id": None,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 30,
            "patch_size": 6,
        },
    )
    _save_model(SiglipModel, config, path)
    return path


BUILDERS = {
    "qwen2_vl": tiny_qwen2_vl,
    "qwen2_5_vl": partial(tiny_qwen2_vl, variant="qwen2_5_vl"),
    "colqwen2": tiny_colqwen2,
    "colpali": tiny_colpali,
    "bert": tiny_bert,
    "mpnet": tiny_mpnet,
    "clip": tiny_clip,
    "siglip": tiny_siglip,
}


def build_all(root: Path) -> dict[str, Path]:
    """Every fixture model under `root/<name>`; returns {name: directory}."""
    return {name: build(root / name) for name, build in BUILDERS.items()}
