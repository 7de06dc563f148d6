"""Write small, self-contained tokenizers so tiny pipelines load offline: CLIP (vocab.json + merges.txt), T5 and
Gemma (tokenizer.json).

The CLIP vocabulary is CLIP's byte-level alphabet (each byte as a word-piece and as a word end) plus the two
special tokens, with no merges: a character-level BPE. It tokenizes any text, needs no download, and is
read by the same `CLIPTokenizer` class that SDXL-Turbo uses. The T5 and Gemma tokenizers are character-level
too, and are read by the tokenizer classes of the real SD3/FLUX/PixArt (T5) and SANA (Gemma) checkpoints.
"""

from __future__ import annotations

import json
import string
from pathlib import Path


def _bytes_to_unicode() -> list[str]:
    # The reversible byte -> printable-unicode table used by GPT-2/CLIP BPE tokenizers.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def clip_char_vocab() -> dict[str, int]:
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}


def write_tokenizer_files(directory: Path, model_max_length: int = 77) -> int:
    """Write vocab.json, merges.txt and the tokenizer configs; return the vocabulary size."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = clip_char_vocab()
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, sort_keys=True))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=1))
    cfg = {"tokenizer_class": "CLIPTokenizer", "model_max_length": model_max_length, "do_lower_case": True, **special}
    (directory / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1))
    return len(vocab)


# ---- T5 (SD3, FLUX, PixArt) and Gemma (SANA): tokenizer.json files built with the `tokenizers` library ----


def _printable() -> list[str]:
    return [c for c in string.printable if not c.isspace()]


def write_t5_tokenizer(directory: Path) -> int:
    """A character-level Unigram T5 tokenizer (tokenizer.json), read by transformers' `T5Tokenizer` (the class
    SD3, FLUX and PixArt use): <pad>=0, </s>=1, <unk>=2, the word-start mark "▁", printable ASCII; other
    characters become <unk>. Returns the vocabulary size."""
    from transformers import T5Tokenizer  # deferred: heavy, and the plan imports this package

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)] + [(c, -3.0) for c in _printable()]
    tok = T5Tokenizer(vocab=vocab, extra_ids=0)
    tok.save_pretrained(str(directory))
    return len(vocab)


def write_gemma_tokenizer(directory: Path) -> int:
    """A character-level BPE Gemma tokenizer with byte fallback (tokenizer.json), read by transformers'
    `GemmaTokenizer` (the class SANA uses): the five special tokens, the 256 byte tokens <0x00>..<0xFF>, "▁" and
    printable ASCII, no merges. Any text tokenizes. Returns the vocabulary size."""
    from transformers import GemmaTokenizer  # deferred: heavy, and the plan imports this package

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece in ["\u2581", *_printable()]:
        vocab.setdefault(piece, len(vocab))
    tok = GemmaTokenizer(vocab=vocab, merges=[])
    tok.save_pretrained(str(directory))
    return len(vocab)
