"""Write a small, self-contained CLIP tokenizer (vocab.json + merges.txt) so tiny pipelines load offline.

The vocabulary is CLIP's byte-level alphabet (each byte as a word-piece and as a word end) plus the two
special tokens, with no merges: a character-level BPE. It tokenizes any text, needs no download, and is
read by the same `CLIPTokenizer` class that SDXL-Turbo uses.
"""

from __future__ import annotations

import json
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
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>"}
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=1))
    cfg = {"tokenizer_class": "CLIPTokenizer", "model_max_length": model_max_length, "do_lower_case": True,
           **special}
    (directory / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1))
    return len(vocab)
