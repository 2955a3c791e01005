"""Tiny pretrained BARTs, made the way their owners make them, for trying and testing the
converter (``pyramidion-convert``) and fine-tuning without downloading a model: a byte-level BPE
trained on a generated corpus, then

- :func:`make_fairseq_bart`: a fairseq ``bart_base``-architecture model trained for a few updates
  of fairseq's denoising task (model.pt + dict.txt + encoder.json + vocab.bpe, as fairseq's
  archives hold them), by fairseq's own ``fairseq-preprocess`` and ``fairseq-train``;
- :func:`make_hf_bart`: a Hugging Face ``BartForConditionalGeneration`` from a tiny
  ``BartConfig`` saved with ``save_pretrained`` (needs transformers).

Random weights at the sizes of :data:`SIZES`; nothing is downloaded. The test suite
(tests/support/bart.py, tests/integration/conftest.py) and benchmarks/pooler_init.py use them.

    src = make_fairseq_bart(Path("work"))   # work/fairseq-bart/, about a minute on a CPU
    # then: pyramidion-convert work/fairseq-bart work/converted --max-source-positions 256
"""
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from deep_pyramidion.data.gpt2_bpe import Gpt2Bpe, learn_merges, write_bpe_files

SIZES = dict(dim=32, ffn=64, layers=2, heads=2, positions=64)
# what the tests convert the encoder to read: 4x the pretrained length
LONG = 4 * SIZES["positions"]
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


def _console_script(name: str) -> str:
    """fairseq's console script beside the running interpreter (a venv's bin/), else on PATH."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def _run(argv: List[str], timeout: Optional[float] = 900) -> str:
    """Run one of fairseq's steps; a failure raises with the tails of its output, which say why."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-5000:]}")
    return proc.stdout + proc.stderr


def make_fairseq_bart(root: Path, seed: int = 0, texts: Optional[List[str]] = None,
                      sizes: Optional[dict] = None, updates: int = 20, merges: int = 120,
                      max_tokens: int = 2048, timeout: Optional[float] = 900,
                      extra_args: Sequence[str] = ()) -> Path:
    """root/fairseq-bart: model.pt, dict.txt, encoder.json, vocab.bpe (fairseq's BART layout),
    pretrained for ``updates`` denoising updates on ``texts`` (default: a generated corpus).
    ``extra_args`` go last on fairseq-train's command line (they override, e.g. ``--lr``)."""
    texts = texts or corpus(200, seed)
    tokens, ranks = learn_merges(texts, merges=merges)
    src = root / "fairseq-bart"
    src.mkdir(parents=True)
    write_bpe_files({t: i for i, t in enumerate(tokens)}, ranks,   # GPT-2 style: no specials
                    str(src / "encoder.json"), str(src / "vocab.bpe"))
    bpe = Gpt2Bpe(str(src / "encoder.json"), str(src / "vocab.bpe"))
    raw = root / "fairseq-bart-raw"
    raw.mkdir()
    cut = max(1, len(texts) * 9 // 10)
    (raw / "train.bpe").write_text("".join(bpe.encode_line(t) + "\n" for t in texts[:cut]))
    (raw / "valid.bpe").write_text("".join(bpe.encode_line(t) + "\n" for t in texts[cut:] or texts[:1]))
    data = root / "fairseq-bart-bin"
    _run([_console_script("fairseq-preprocess"), "--only-source", "--trainpref",
          str(raw / "train.bpe"), "--validpref", str(raw / "valid.bpe"), "--destdir", str(data),
          "--dataset-impl", "mmap", "--workers", "1"])
    s = sizes or SIZES
    _run([_console_script("fairseq-train"), str(data), "--task", "denoising", "--arch", "bart_base",
          "--encoder-embed-dim", str(s["dim"]), "--decoder-embed-dim", str(s["dim"]),
          "--encoder-ffn-embed-dim", str(s["ffn"]), "--decoder-ffn-embed-dim", str(s["ffn"]),
          "--encoder-layers", str(s["layers"]), "--decoder-layers", str(s["layers"]),
          "--encoder-attention-heads", str(s["heads"]), "--decoder-attention-heads", str(s["heads"]),
          "--max-source-positions", str(s["positions"]), "--max-target-positions", str(s["positions"]),
          "--tokens-per-sample", str(s["positions"] - 2), "--mask", "0.3", "--mask-length",
          "span-poisson", "--replace-length", "1", "--rotate", "0", "--permute-sentences", "0",
          "--criterion", "cross_entropy", "--optimizer", "adam", "--lr", "0.003",
          "--max-tokens", str(max_tokens), "--max-update", str(updates), "--seed", str(seed),
          "--cpu", "--save-dir", str(root / "fairseq-bart-train"), "--no-epoch-checkpoints",
          "--num-workers", "0", "--log-format", "simple", "--log-interval", "10",
          # text packed into blocks of tokens_per_sample, whatever the line lengths
          "--sample-break-mode", "none", "--ddp-backend", "legacy_ddp", *extra_args],
         timeout=timeout)
    shutil.copyfile(root / "fairseq-bart-train" / "checkpoint_last.pt", src / "model.pt")
    shutil.copyfile(data / "dict.txt", src / "dict.txt")
    return src


def make_hf_bart(root: Path, seed: int = 0) -> Path:
    """root/hf-bart: config.json, model.safetensors, vocab.json, merges.txt (save_pretrained)."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    texts = corpus(200, seed)
    tokens, ranks = learn_merges(texts, merges=120)
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
    write_bpe_files(vocab, ranks, str(src / "vocab.json"), str(src / "merges.txt"))
    return src
