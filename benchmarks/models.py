"""The models the tables compare, the batches they run on, and the one training step they take.

Models (random init, equal sizes: by default (--family deep) the pyramidion_deep architecture,
6+6 layers, d=512, ffn 2048, 8 heads, a shared 32k vocabulary; --family bart-base gives every
model bart.base's shape instead (the pyramidion_bart_base architecture as pyramidion-convert
makes it from bart.base: learned positions, GELU, chunks of 1024, the recipe's schedule
"{3: 2048, 5: 1024}", a 50265 vocabulary; LED then has led-base's shape, window 1024);
--quick shrinks all of them alike):
  pyramidion  --arch pyramidion_deep: blockwise attention (chunks of 512), top-k pooling
              8192 -> 2048 -> 512, i.e. --enc-layers-and-token-width "{0: 2048, 1: 512}"
  blockwise   the same code with --encoder-pooling none (the paper's blockwise baseline)
  full        --encoder-attention full --encoder-pooling none
  led         Hugging Face LEDForConditionalGeneration (Longformer Encoder-Decoder), same layers,
              width, heads, ffn, vocabulary, relu, dropout; attention window 512 (= the chunk
              size); global attention on the first token (LED's summarization setup). Optional:
              needs `transformers`; its rows say why when it is missing or cannot be imported.

The fairseq models are built the way fairseq-train builds them (command line -> task -> model),
so a benchmark measures what a user trains, not a hand-assembled copy.
"""
from __future__ import annotations

import os
from contextlib import nullcontext

MODELS = ("pyramidion", "blockwise", "full", "led")
BASELINE = "blockwise"

# model sizes: the paper's DeepPyramidion, a converted bart.base (configs/train/bart_base.args),
# and a tiny variant of each for smoke runs
FULL_SIZES = dict(layers=6, dim=512, ffn=2048, heads=8, vocab=32000, chunk=512,
                  schedule="{0: 2048, 1: 512}", widths=(2048, 512), arch="pyramidion_deep",
                  activation="relu")
QUICK_SIZES = dict(layers=2, dim=64, ffn=128, heads=4, vocab=1000, chunk=32,
                   schedule="{0: 64, 1: 16}", widths=(64, 16), arch="pyramidion_deep",
                   activation="relu")
BART_BASE_SIZES = dict(layers=6, dim=768, ffn=3072, heads=12, vocab=50265, chunk=1024,
                       schedule="{3: 2048, 5: 1024}", widths=(2048, 1024),
                       arch="pyramidion_bart_base", activation="gelu")
QUICK_BART_SIZES = dict(QUICK_SIZES, arch="pyramidion_bart_base", activation="gelu")
FAMILIES = {"deep": (FULL_SIZES, QUICK_SIZES), "bart-base": (BART_BASE_SIZES, QUICK_BART_SIZES)}

FAIRSEQ_FLAGS = {
    "pyramidion": ["--encoder-pooling", "topk"],
    "blockwise": ["--encoder-pooling", "none"],
    "full": ["--encoder-attention", "full", "--encoder-pooling", "none"],
}


def fairseq_model(kind, length, sizes, out_len):
    """A fairseq pyramidion model built from a command line -> (model, task, dictionary)."""
    import torch
    from fairseq import options
    from fairseq.data import Dictionary
    from fairseq.tasks.translation import TranslationTask

    import deep_pyramidion

    d = Dictionary()
    for i in range(sizes["vocab"] - len(d)):
        d.add_symbol(f"w{i}")
    argv = [
        "unused-data-dir", "--user-dir", os.path.dirname(deep_pyramidion.__file__),
        "--task", "translation", "--arch", sizes["arch"], "--source-lang", "src",
        "--target-lang", "tgt", "--share-all-embeddings",
        "--max-source-positions", str(max(length, 1024)),
        "--max-target-positions", str(max(1024, out_len + 8)),
        "--dropout", "0.1", "--attention-dropout", "0.1",
        "--encoder-layers", str(sizes["layers"]), "--decoder-layers", str(sizes["layers"]),
        "--encoder-embed-dim", str(sizes["dim"]), "--decoder-embed-dim", str(sizes["dim"]),
        "--encoder-ffn-embed-dim", str(sizes["ffn"]), "--decoder-ffn-embed-dim", str(sizes["ffn"]),
        "--encoder-attention-heads", str(sizes["heads"]),
        "--decoder-attention-heads", str(sizes["heads"]),
        "--chunk-size", str(sizes["chunk"]), "--enc-layers-and-token-width", sizes["schedule"],
        *FAIRSEQ_FLAGS[kind],
    ]
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    task = TranslationTask(args, d, d)
    torch.manual_seed(0)
    model = task.build_model(args)
    return model, task, d


def import_led():
    """transformers, with LED importable, or raise with the reason.

    Anything that stops the import counts (a missing package, or a dependency that is installed
    but cannot load, such as a torchaudio built for another torch): the LED rows then carry the
    message instead of the benchmark stopping, and nothing is patched to get past it."""
    try:
        from transformers import LEDConfig, LEDForConditionalGeneration  # noqa: F401
        import transformers
    except Exception as exc:  # noqa: BLE001 - any import failure: the rows say which
        raise ImportError(f"{type(exc).__name__}: {exc}") from exc
    return transformers


def led_model(length, sizes, out_len):
    import torch
    from transformers import LEDConfig, LEDForConditionalGeneration

    window = sizes["chunk"]
    cfg = LEDConfig(
        vocab_size=sizes["vocab"], d_model=sizes["dim"],
        encoder_layers=sizes["layers"], decoder_layers=sizes["layers"],
        encoder_attention_heads=sizes["heads"], decoder_attention_heads=sizes["heads"],
        encoder_ffn_dim=sizes["ffn"], decoder_ffn_dim=sizes["ffn"],
        activation_function=sizes["activation"], dropout=0.1, attention_dropout=0.1, activation_dropout=0.0,
        max_encoder_position_embeddings=max(length, 1024) + window,
        max_decoder_position_embeddings=max(1024, out_len + 8),
        attention_window=[window] * sizes["layers"],
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
    )
    torch.manual_seed(0)
    return LEDForConditionalGeneration(cfg)


def build(kind, length, args, device):
    """-> (model on device, fairseq dictionary or None for LED)"""
    if kind == "led":
        return led_model(length, args.sizes, args.out_len).to(device), None
    model, _task, d = fairseq_model(kind, length, args.sizes, args.out_len)
    return model.to(device), d


def pad_index(model, d):
    """The padding index the loss ignores: the dictionary's, or LED's config's."""
    return d.pad() if d is not None else model.config.pad_token_id


def random_batch(batch, length, vocab, out_len, device, nspecial=4, eos=2, seed=0):
    """Source (B, T) without padding, ending in eos; target (B, out_len) ending in eos; the
    decoder input is the target shifted right behind eos (fairseq's prev_output_tokens)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    src = torch.randint(nspecial, vocab, (batch, length), generator=g)
    src[:, -1] = eos
    tgt = torch.randint(nspecial, vocab, (batch, out_len), generator=g)
    tgt[:, -1] = eos
    prev = torch.cat([torch.full((batch, 1), eos), tgt[:, :-1]], dim=1)
    lengths = torch.full((batch,), length, dtype=torch.long)
    return src.to(device), lengths.to(device), tgt.to(device), prev.to(device)


def led_masks(src):
    """LED's attention mask (all tokens) and global attention mask (the first token)."""
    import torch

    glob = torch.zeros_like(src)
    glob[:, 0] = 1
    return torch.ones_like(src), glob


def train_step(kind, model, d, batch, vocab, autocast, label_phases=False):
    """One training step as a closure: forward, token-level NLL summed over the target tokens,
    backward, AdamW step (lr 5e-4, weight decay 0.1).

    The one step the train table times and the profile dissects, so that the two describe the
    same work. The loss is fairseq's cross_entropy criterion: padding targets are ignored
    (``ignore_index`` = the padding index), as in real training; random_batch makes no padding,
    so this changes no figure, but a batch with padding would otherwise train on it.
    label_phases: wrap loss + backward and the optimizer step in profiler ranges
    ("bench::loss + backward", "bench::optimizer"); the timed step leaves them out."""
    import torch
    import torch.nn.functional as F
    from torch.autograd.profiler import record_function

    src, lengths, tgt, prev = batch
    pad = pad_index(model, d)
    attn, glob = led_masks(src)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.1)

    def phase(name):
        return record_function("bench::" + name) if label_phases else nullcontext()

    def forward():
        """-> logits, and the selection term a model built with --selection-loss 1 returns"""
        if kind == "led":
            return model(input_ids=src, attention_mask=attn, global_attention_mask=glob,
                         decoder_input_ids=prev, use_cache=False).logits, None
        logits, extra = model(src, lengths, prev)
        selection = extra.get("selection_loss") if isinstance(extra, dict) else None
        return logits, selection[0] if selection else None

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            logits, selection = forward()
        lprobs = F.log_softmax(logits.float(), dim=-1)
        with phase("loss + backward"):
            loss = F.nll_loss(lprobs.view(-1, vocab), tgt.view(-1), ignore_index=pad,
                              reduction="sum")
            if selection is not None:  # weighted 1 per target token, as its criterion adds it
                loss = loss + selection * tgt.numel()
            loss.backward()
        with phase("optimizer"):
            opt.step()

    return step
