"""Tiny pretrained BARTs made inside the tests, the way their owners make them: a byte-level BPE
trained on a generated corpus, then a fairseq ``bart_base``-architecture model trained for a few
updates of fairseq's denoising task (model.pt + dict.txt as fairseq's archives hold them), and a
Hugging Face ``BartForConditionalGeneration`` from a tiny ``BartConfig`` saved with
``save_pretrained``. Random weights, nothing downloaded."""
import json
import random
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

from deep_pyramidion.data.gpt2_bpe import Gpt2Bpe, _WORD_PATTERN, byte_alphabet
from tests.support.paths import console_script

SIZES = dict(dim=32, ffn=64, layers=2, heads=2, positions=64)
LONG = 4 * SIZES["positions"]    # what the tests convert the encoder to read: 4x the pretrained length
WORDS = ("the model reads long documents and keeps what matters for the summary while the rest "
         "of the tokens is pooled away; results show that pooling keeps quality at lower cost. "
         "We train on papers, abstracts, sections, tables and figures with numbers 12 34 2026.")


def corpus(n: int, seed: int = 0, min_words: int = 8, max_words: int = 40) -> List[str]:
    rng = random.Random(seed)
    vocab = WORDS.replace(";", " ;").replace(".", " .").replace(",", " ,").split()
    docs = []
    for _ in range(n):
        words = [rng.choice(vocab) for _ in range(rng.randint(min_words, max_words))]
        words[0] = words[0].capitalize()
        docs.append(" ".join(words) + ".")
    return docs


def train_byte_bpe(texts: List[str], merges: int = 120) -> Tuple[List[str], List[Tuple[str, str]]]:
    """(tokens in id order: the 256 byte characters, then every merge; the merges in rank order)."""
    import regex

    alphabet = byte_alphabet()
    words = Counter()
    for text in texts:
        for word in regex.findall(_WORD_PATTERN, text):
            words[tuple(alphabet[b] for b in word.encode("utf-8"))] += 1
    tokens = [alphabet[b] for b in range(256)]
    ranks = []
    for _ in range(merges):
        pairs = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        ranks.append(best)
        tokens.append(best[0] + best[1])
        merged = Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    return tokens, ranks


def write_bpe(tokens, ranks, vocab_path: Path, merges_path: Path, vocab: Dict[str, int]) -> None:
    vocab_path.write_text(json.dumps(vocab), encoding="utf-8")
    merges_path.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in ranks),
                           encoding="utf-8")


def run(argv, cwd=None):
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"{argv[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc.stdout + proc.stderr


def make_fairseq_bart(root: Path, seed: int = 0) -> Path:
    """root/fairseq-bart: model.pt, dict.txt, encoder.json, vocab.bpe (fairseq's BART layout)."""
    texts = corpus(200, seed)
    tokens, ranks = train_byte_bpe(texts)
    src = root / "fairseq-bart"
    src.mkdir(parents=True)
    write_bpe(tokens, ranks, src / "encoder.json", src / "vocab.bpe",
              {t: i for i, t in enumerate(tokens)})   # GPT-2 style: ids without specials
    bpe = Gpt2Bpe(str(src / "encoder.json"), str(src / "vocab.bpe"))
    raw = root / "fairseq-bart-raw"
    raw.mkdir()
    (raw / "train.bpe").write_text("".join(bpe.encode_line(t) + "\n" for t in texts[:180]))
    (raw / "valid.bpe").write_text("".join(bpe.encode_line(t) + "\n" for t in texts[180:]))
    data = root / "fairseq-bart-bin"
    run([console_script("fairseq-preprocess"), "--only-source", "--trainpref",
         str(raw / "train.bpe"), "--validpref", str(raw / "valid.bpe"), "--destdir", str(data),
         "--dataset-impl", "mmap", "--workers", "1"])
    s = SIZES
    run([console_script("fairseq-train"), str(data), "--task", "denoising", "--arch", "bart_base",
         "--encoder-embed-dim", str(s["dim"]), "--decoder-embed-dim", str(s["dim"]),
         "--encoder-ffn-embed-dim", str(s["ffn"]), "--decoder-ffn-embed-dim", str(s["ffn"]),
         "--encoder-layers", str(s["layers"]), "--decoder-layers", str(s["layers"]),
         "--encoder-attention-heads", str(s["heads"]), "--decoder-attention-heads", str(s["heads"]),
         "--max-source-positions", str(s["positions"]), "--max-target-positions", str(s["positions"]),
         "--tokens-per-sample", str(s["positions"] - 2), "--mask", "0.3", "--mask-length",
         "span-poisson", "--replace-length", "1", "--rotate", "0", "--permute-sentences", "0",
         "--criterion", "cross_entropy", "--optimizer", "adam", "--lr", "0.003",
         "--max-tokens", "2048", "--max-update", "20", "--seed", str(seed), "--cpu",
         "--save-dir", str(root / "fairseq-bart-train"), "--no-epoch-checkpoints",
         "--num-workers", "0", "--log-format", "simple", "--log-interval", "10",
         "--ddp-backend", "legacy_ddp"])
    shutil.copyfile(root / "fairseq-bart-train" / "checkpoint_last.pt", src / "model.pt")
    shutil.copyfile(data / "dict.txt", src / "dict.txt")
    return src


def make_hf_bart(root: Path, seed: int = 0) -> Path:
    """root/hf-bart: config.json, model.safetensors, vocab.json, merges.txt (save_pretrained)."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    texts = corpus(200, seed)
    tokens, ranks = train_byte_bpe(texts)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    vocab["<mask>"] = len(vocab)
    s = SIZES
    config = BartConfig(vocab_size=len(vocab), d_model=s["dim"], encoder_layers=s["layers"],
                        decoder_layers=s["layers"], encoder_attention_heads=s["heads"],
                        decoder_attention_heads=s["heads"], encoder_ffn_dim=s["ffn"],
                        decoder_ffn_dim=s["ffn"], max_position_embeddings=s["positions"],
                        dropout=0.1, attention_dropout=0.0, activation_dropout=0.0)
    torch.manual_seed(seed)
    model = BartForConditionalGeneration(config)
    src = root / "hf-bart"
    model.save_pretrained(str(src), safe_serialization=True)
    write_bpe(tokens, ranks, src / "vocab.json", src / "merges.txt", vocab)
    return src
