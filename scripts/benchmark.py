#!/usr/bin/env python
"""Speed and memory of DeepPyramidion against its baselines and a peer (issue 6).

Models (random init, equal sizes: the pyramidion_deep architecture, 6+6 layers, d=512, ffn 2048,
8 heads, a shared 32k vocabulary; --quick shrinks all of them alike):
  pyramidion  --arch pyramidion_deep: blockwise attention (chunks of 512), top-k pooling
              8192 -> 2048 -> 512, i.e. --enc-layers-and-token-width "{0: 2048, 1: 512}"
  blockwise   the same code with --encoder-pooling none (the paper's blockwise baseline)
  full        --encoder-attention full --encoder-pooling none
  led         Hugging Face LEDForConditionalGeneration (Longformer Encoder-Decoder), same layers,
              width, heads, ffn, vocabulary, relu, dropout; attention window 512 (= the chunk
              size); global attention on the first token (LED's summarization setup). Optional:
              needs `transformers`; its rows say why when it is missing.

Tables (--tables):
  train     one training step: forward + backward + AdamW step, token-level NLL summed over
            --out-len target tokens (fairseq's cross_entropy criterion), dropout 0.1, attention
            dropout 0.1 (the seed's training settings).
  encoder   the encoder alone, forward without gradients (LED: LEDModel's encoder).
  generate  beam search with --beams, every output forced to --out-len tokens (min_len = max_len;
            fairseq's SequenceGenerator built in-process, LED's generate with min_new_tokens =
            max_new_tokens = out_len + 1, so both run out_len + 1 decoder steps). Time per
            document = time per call / --gen-batch.
  decoder   the decoder alone: incremental decoding of --out-len steps for one document with a
            beam of --beams rows over a random encoder_out of 512 or of 8192 positions (the
            pyramidion's and the baseline's encoder widths at 8k input); time per generated
            token with and without the 32k output projection.
  profile   torch.profiler over one generate call (the largest of --beams, the longest of
            --gen-lengths) and one training step (the longest of --lengths), pyramidion,
            blockwise and led: inclusive time of the encoder (and of its pooling), the decoder's
            self-attention, cross-attention, feed-forward, output projection, and the rest
            (beam search bookkeeping and log-softmax; loss, backward and optimizer in training).

Measuring. Every configuration (table, model, length, beam) first runs alone in its own process,
forked from this one after the imports, so that no configuration inherits another's memory: one
run (after one untimed step for training, so that AdamW's state exists) gives its memory and a
first time. Then the models of one group (same table, length and beam) are timed side by side in
one process: --warmup untimed runs each, then --repeat rounds in which every model runs once, the
starting model rotating, so that a change in the machine's load hits all of them alike (--no-paired
times each configuration alone instead). The tables show the side-by-side times, the ratios
divide them pair by pair (model / pyramidion, same length and beam), using the minimum over the
rounds (on a shared CPU other jobs only ever add time; --stat median to change). The load average
before and after every configuration is recorded. On a CPU shared with other jobs use --threads 1:
with more threads than free cores, every parallel region waits for a descheduled thread.
Memory:
  CPU   "peak RSS": the high-water mark of the configuration's process (VmHWM of
        /proc/self/status; it starts at the forked parent's resident size, interpreter + torch +
        fairseq, shown as "base RSS"). "step peak": the resident-set high-water mark during the
        last timed run minus the resident size just before it (VmHWM reset via
        /proc/self/clear_refs, after glibc's malloc_trim): the activations, gradients and
        temporaries of one step, above the weights and optimizer state that persist.
  CUDA  torch.cuda.max_memory_allocated() over the process, and the same minus the allocation
        before the last timed run (tensors only, not the caching allocator's reserve).
Full attention is skipped with a note where the estimated memory exceeds --mem-limit-gb, and a
configuration that runs out of memory, fails or exceeds --timeout says so in its row.
On CUDA every model runs under torch.autocast(bfloat16) with float32 weights.

Examples
  python scripts/benchmark.py --quick --json /tmp/quick.json            # smoke run, ~30 s
  python scripts/benchmark.py --tables train --lengths 1024,2048,4096,8192,16384 --repeat 2 \\
      --json train.json
  python scripts/benchmark.py --threads 1 --tables generate --gen-lengths 8192 --beams 4,16 \\
      --json gen.json
  python scripts/benchmark.py --from-json train.json gen.json --plots docs   # tables + plots only
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import itertools
import time
import traceback
from contextlib import nullcontext

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench_memory import loadavg, malloc_trim, proc_kib  # noqa: E402  (scripts/, beside this file)

MODELS = ("pyramidion", "blockwise", "full", "led")
TABLES = ("train", "encoder", "generate", "decoder", "profile")
PAIRED_TABLES = ("train", "encoder", "generate")  # timed side by side, one process per group
BASELINE = "blockwise"
RESULT_TAG = "BENCH_RESULT "

# model sizes: the paper's DeepPyramidion and a tiny variant for smoke runs
FULL_SIZES = dict(layers=6, dim=512, ffn=2048, heads=8, vocab=32000, chunk=512,
                  schedule="{0: 2048, 1: 512}", widths=(2048, 512))
QUICK_SIZES = dict(layers=2, dim=64, ffn=128, heads=4, vocab=1000, chunk=32,
                   schedule="{0: 64, 1: 16}", widths=(64, 16))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="cuda runs every model under bf16 autocast (default: %(default)s)")
    p.add_argument("--tables", default="train,encoder,generate,decoder",
                   help="comma-separated subset of: " + ", ".join(TABLES) + " (default: %(default)s)")
    p.add_argument("--models", default=",".join(MODELS), help="subset of: " + ", ".join(MODELS))
    p.add_argument("--lengths", default="1024,2048,4096,8192,16384",
                   help="input lengths of the train and encoder tables (default: %(default)s)")
    p.add_argument("--gen-lengths", default="8192",
                   help="input lengths of the generate table (default: %(default)s)")
    p.add_argument("--beams", default="4,16", help="beam sizes (default: %(default)s)")
    p.add_argument("--out-len", type=int, default=128,
                   help="output tokens: generation is forced to exactly this many; also the "
                        "target length of a training step (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="documents per training step / encoder "
                   "call (default: %(default)s)")
    p.add_argument("--gen-batch", type=int, default=1,
                   help="documents per generate call (default: %(default)s)")
    p.add_argument("--decoder-widths", default=None,
                   help="encoder_out widths of the decoder table (default: 512,8192; quick: 16,256)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per configuration "
                   "(default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default: %(default)s)")
    p.add_argument("--stat", default="min", choices=("min", "median"),
                   help="statistic of the ratios (default: %(default)s)")
    p.add_argument("--mem-limit-gb", type=float, default=12.0,
                   help="skip a configuration whose estimated peak exceeds this (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds one configuration may take before it is stopped (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--quick", action="store_true",
                   help="tiny models and lengths (smoke run): lengths 128,256, beams 2, out-len 8")
    p.add_argument("--json", default=None, metavar="PATH", help="write all results as JSON")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write PNG plots (time and memory vs input length) into DIR")
    p.add_argument("--from-json", nargs="+", default=None, metavar="PATH",
                   help="measure nothing: merge these JSON files, print the tables, plot")
    p.add_argument("--no-paired", action="store_true",
                   help="time each configuration alone (--warmup/--repeat in its own process) "
                        "instead of side by side with the other models of its group")
    p.add_argument("--in-process", action="store_true",
                   help="run every configuration in this process (no fork; memory figures then "
                        "include earlier configurations' leftovers)")
    args = p.parse_args(argv)
    if args.quick:
        defaults = {"lengths": "1024,2048,4096,8192,16384", "gen_lengths": "8192", "beams": "4,16",
                    "out_len": 128}
        quick = {"lengths": "128,256", "gen_lengths": "256", "beams": "2", "out_len": 8}
        for key, value in quick.items():
            if getattr(args, key) == defaults[key]:
                setattr(args, key, value)
    args.sizes = dict(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.decoder_widths is None:
        args.decoder_widths = "16,256" if args.quick else "512,8192"
    return args


def ints(text):
    return [int(v) for v in str(text).split(",") if v.strip()]


def names(text, allowed, flag):
    out = [v.strip() for v in text.split(",") if v.strip()]
    bad = sorted(set(out) - set(allowed))
    if bad:
        sys.exit(f"{flag}: unknown {bad}; choose from {list(allowed)}")
    return out


# ----------------------------------------------------------------------------- system facts
def machine_info(device):
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass
    import torch

    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version()}
    try:
        import fairseq

        info["fairseq"] = fairseq.__version__
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            info["mem_total_gib"] = round(int(fh.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ----------------------------------------------------------------------------- memory


class MemoryProbe:
    """Process peak and the peak of one run above the memory resting before it (module docstring)."""

    def __init__(self, device):
        self.device = device

    def before_run(self):
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            self.rest = torch.cuda.memory_allocated()
            self.process_peak = torch.cuda.max_memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            return
        malloc_trim()
        self.rest = None
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # VmHWM := VmRSS
            self.rest = proc_kib("VmRSS")
        except OSError:
            pass

    def after_run(self):
        """-> (process peak MiB, run peak above resting MiB)"""
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            return max(peak, self.process_peak) / 2**20, (peak - self.rest) / 2**20
        hwm = proc_kib("VmHWM")
        process_peak = max(hwm or 0, getattr(self, "process_hwm", 0) or 0)
        step = (hwm - self.rest) / 1024 if (hwm is not None and self.rest is not None) else None
        return process_peak / 1024 if process_peak else None, step

    def note_process_peak(self):
        """VmHWM is reset by before_run: remember the process's own peak up to now first."""
        if self.device != "cuda":
            self.process_hwm = max(proc_kib("VmHWM") or 0, getattr(self, "process_hwm", 0) or 0)


def time_runs(fn, sync, warmup, repeat, probe):
    """Run fn warmup times, then repeat times; memory is probed around the last timed run."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for i in range(repeat):
        last = i == repeat - 1
        if last:
            probe.note_process_peak()
            probe.before_run()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    peak, step_peak = probe.after_run()
    return {"times_s": times, "min_s": min(times), "median_s": statistics.median(times),
            "peak_mib": peak, "step_peak_mib": step_peak}


def estimate_gib(spec, sizes):
    """Rough peak estimate, only to skip what cannot fit: full attention materialises
    heads x T x T scores per layer (kept for backward in training, with dropout's mask)."""
    T, B = spec["length"], spec.get("batch", 1)
    L, H, D = sizes["layers"], sizes["heads"], sizes["dim"]
    fixed = 1.5 + 4 * 4 * 61e6 / 2**30 * (sizes["dim"] / 512) ** 2
    # ~20 D-sized float32 activations per token and layer, x3 in training: calibrated on the
    # measured step peak of a blockwise training step (4096 tokens, 6 layers, d=512: 2976 MiB)
    per_token = 20 * D * 4 * L * B * T / 2**30 * (3 if spec["table"] == "train" else 0.6)
    attn = 0.0
    if spec["model"] == "full":
        if spec["table"] == "train":
            attn = L * B * H * T * T * 4 * 2.25 / 2**30   # scores + softmax + dropout mask
        else:  # no dropout, no mask: scaled_dot_product_attention's flash kernel, O(T) memory
            attn = B * H * T * 512 * 4 / 2**30
    return fixed + per_token + attn


# ----------------------------------------------------------------------------- models
def fairseq_model(kind, length, sizes, out_len):
    """Build a fairseq pyramidion model the way fairseq-train does (options -> task -> model)."""
    import torch
    import deep_pyramidion
    from fairseq import options
    from fairseq.data import Dictionary
    from fairseq.tasks.translation import TranslationTask

    d = Dictionary()
    for i in range(sizes["vocab"] - len(d)):
        d.add_symbol(f"w{i}")
    flags = {
        "pyramidion": ["--encoder-pooling", "topk"],
        "blockwise": ["--encoder-pooling", "none"],
        "full": ["--encoder-attention", "full", "--encoder-pooling", "none"],
    }[kind]
    argv = [
        "unused-data-dir", "--user-dir", os.path.dirname(deep_pyramidion.__file__),
        "--task", "translation", "--arch", "pyramidion_deep", "--source-lang", "src",
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
        *flags,
    ]
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    task = TranslationTask(args, d, d)
    torch.manual_seed(0)
    model = task.build_model(args)
    return model, task, d


def import_led():
    """transformers' LED classes, or raise ImportError with the reason."""
    # The venv's torchaudio is a CUDA build that cannot load against the CPU torch, and
    # transformers imports it when it is installed; LED never needs it, so hide it.
    if "torchaudio" not in sys.modules:
        try:
            import torchaudio  # noqa: F401
        except Exception:  # noqa: BLE001 - any load failure: hide it
            sys.modules["torchaudio"] = None
    from transformers import LEDConfig, LEDForConditionalGeneration  # noqa: F401
    import transformers

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
        activation_function="relu", dropout=0.1, attention_dropout=0.1, activation_dropout=0.0,
        max_encoder_position_embeddings=max(length, 1024) + window,
        max_decoder_position_embeddings=max(1024, out_len + 8),
        attention_window=[window] * sizes["layers"],
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
    )
    torch.manual_seed(0)
    model = LEDForConditionalGeneration(cfg)
    return model


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


# ----------------------------------------------------------------------------- one configuration
def setup_torch(args):
    import torch

    logging.disable(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else nullcontext
    return torch.device(args.device), sync, autocast


def build(kind, T, args, device):
    """-> (model, dictionary or None)"""
    if kind == "led":
        return led_model(T, args.sizes, args.out_len).to(device), None
    model, _task, d = fairseq_model(kind, T, args.sizes, args.out_len)
    return model.to(device), d


def make_runner(spec, args, model, d, device, autocast):
    """One run of a train / encoder / generate configuration as a closure; the closure's
    ``info`` dict collects facts about the run (decoder steps of a generation)."""
    import torch
    import torch.nn.functional as F

    table, kind, T = spec["table"], spec["model"], spec["length"]
    out_len, V, pad = args.out_len, args.sizes["vocab"], 1
    batch = args.gen_batch if table == "generate" else args.batch
    src, lengths, tgt, prev = random_batch(batch, T, V, out_len, device)
    attn = torch.ones_like(src)
    glob = torch.zeros_like(src)
    glob[:, 0] = 1  # LED: global attention on the first token
    info = {}

    if table == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.1)

        def forward():
            if kind == "led":
                return model(input_ids=src, attention_mask=attn, global_attention_mask=glob,
                             decoder_input_ids=prev, use_cache=False).logits
            return model(src, lengths, prev)[0]

        def fn():
            opt.zero_grad(set_to_none=True)
            with autocast():
                logits = forward()
            lprobs = F.log_softmax(logits.float(), dim=-1)
            loss = F.nll_loss(lprobs.view(-1, V), tgt.view(-1), ignore_index=pad, reduction="sum")
            loss.backward()
            opt.step()

    elif table == "encoder":
        model.eval()

        def fn():
            with torch.no_grad(), autocast():
                if kind == "led":
                    return model.get_encoder()(input_ids=src, attention_mask=attn,
                                               global_attention_mask=glob)
                return model.encoder(src, lengths)

    elif table == "generate":
        beam = spec["beam"]
        model.eval()
        if kind == "led":
            def fn():
                with torch.no_grad(), autocast():
                    out = model.generate(
                        input_ids=src, attention_mask=attn, global_attention_mask=glob,
                        num_beams=beam, num_return_sequences=1, do_sample=False,
                        max_new_tokens=out_len + 1, min_new_tokens=out_len + 1,
                        length_penalty=1.0, no_repeat_ngram_size=0, use_cache=True)
                info["decoder_steps"] = out.shape[1] - 1  # minus the decoder start token
        else:
            from fairseq.sequence_generator import SequenceGenerator

            gen = SequenceGenerator([model], d, beam_size=beam, max_len_a=0, max_len_b=out_len,
                                    min_len=out_len)
            sample = {"net_input": {"src_tokens": src, "src_lengths": lengths}}

            def fn():
                with torch.no_grad(), autocast():
                    hyps = gen.generate([model], sample)
                info["decoder_steps"] = len(hyps[0][0]["tokens"])  # out_len tokens + eos
    else:
        raise ValueError(f"no runner for table {table!r}")
    fn.info = info
    return fn


def run_config(spec, args):
    """Measure one configuration alone in this process; returns the row."""
    import torch

    device, sync, autocast = setup_torch(args)
    probe = MemoryProbe(args.device)
    table, kind = spec["table"], spec["model"]
    row = dict(spec)
    base = proc_kib("VmRSS")
    row["base_rss_mib"] = base / 1024 if base and not args.in_process else None
    model, d = build(kind, spec["length"], args, device)
    if table in ("train", "encoder", "generate"):
        fn = make_runner(spec, args, model, d, device, autocast)
        row.update(time_runs(fn, sync, args.warmup, args.repeat, probe))
        row.update(fn.info)
    elif table == "decoder":
        row.update(decoder_config(spec, args, model, d, device, autocast, sync, probe))
    elif table == "profile":
        row.update(profile_config(spec, args, model, d, device, autocast, sync))
    return row


def run_paired(specs, args):
    """Time the configurations of one group (same table, length, beam; one per model) side by
    side in this process: every round runs each model once, the starting model rotating, so
    that a change in the machine's load hits all of them alike. Returns one dict per spec."""
    device, sync, autocast = setup_torch(args)
    fns = []
    for spec in specs:
        model, d = build(spec["model"], spec["length"], args, device)
        fns.append(make_runner(spec, args, model, d, device, autocast))
    for _ in range(args.warmup):
        for fn in fns:
            fn()
    sync()
    times = [[] for _ in specs]
    for r in range(args.repeat):
        for j in range(len(fns)):
            i = (r + j) % len(fns)
            t0 = time.perf_counter()
            fns[i]()
            sync()
            times[i].append(time.perf_counter() - t0)
    return [{"paired_times_s": t, "paired_min_s": min(t), "paired_median_s": statistics.median(t),
             **fn.info} for t, fn in zip(times, fns)]


def decoder_config(spec, args, model, d, device, autocast, sync, probe):
    """Incremental decoding of out_len steps over a random encoder_out of `length` positions."""
    import torch

    beam, S, out_len = spec["beam"], spec["length"], args.out_len
    model.eval()
    dec = model.decoder
    g = torch.Generator().manual_seed(0)
    enc_x = torch.randn(S, 1, args.sizes["dim"], generator=g).to(device).expand(S, beam, -1)
    enc = {"encoder_out": [enc_x.contiguous()],
           "encoder_padding_mask": [torch.zeros(beam, S, dtype=torch.bool, device=device)],
           "encoder_embedding": [], "encoder_states": [], "src_tokens": [], "src_lengths": [],
           "row_source": [torch.zeros(beam, dtype=torch.long, device=device)]}
    # as beam search does: one source, beam rows (lets the decoder share cross-attention k/v)
    if hasattr(model.encoder, "_set_decoder_beam"):
        model.encoder._set_decoder_beam(beam)
    eos = d.eos()

    def decode(features_only):
        tokens = torch.full((beam, out_len + 1), eos, dtype=torch.long, device=device)
        state = {}
        with torch.no_grad(), autocast():
            for t in range(out_len):
                x, _ = dec(tokens[:, : t + 1], encoder_out=enc, incremental_state=state,
                           features_only=features_only)
                if features_only:
                    tokens[:, t + 1] = x[:, -1, :8].argmax(-1) + 4
                else:
                    lp = model.get_normalized_probs((x[:, -1:], None), log_probs=True)
                    tokens[:, t + 1] = lp[:, -1].argmax(-1)

    full = time_runs(lambda: decode(False), sync, args.warmup, args.repeat, probe)
    feats = time_runs(lambda: decode(True), sync, args.warmup, args.repeat, probe)
    out = dict(full)
    out["shared_kv"] = int(getattr(dec.layers[0].encoder_attn, "beam_size", 1)) > 1
    out["per_token_s"] = full["min_s"] / out_len
    out["per_token_no_proj_s"] = feats["min_s"] / out_len
    out["per_token_median_s"] = full["median_s"] / out_len
    return out


# ----------------------------------------------------------------------------- profile
def _label_modules(model, kind):
    """Forward hooks that wrap interesting modules in profiler ranges: name -> module list."""
    if kind == "led":
        enc, dec = model.led.encoder, model.led.decoder
        groups = {
            "encoder": [enc],
            "decoder self-attention": [layer.self_attn for layer in dec.layers],
            "decoder cross-attention": [layer.encoder_attn for layer in dec.layers],
            "decoder feed-forward": [m for layer in dec.layers for m in (layer.fc1, layer.fc2)],
            "output projection": [model.lm_head],
        }
    else:
        dec = model.decoder
        groups = {
            "encoder": [model.encoder],
            "encoder: of which pooling": list(getattr(model.encoder, "poolers", {}).values()),
            "decoder self-attention": [layer.self_attn for layer in dec.layers],
            "decoder cross-attention": [layer.encoder_attn for layer in dec.layers],
            "decoder feed-forward": [m for layer in dec.layers for m in (layer.fc1, layer.fc2)],
            "output projection": [dec.output_projection],
        }
    import torch

    handles = []
    for name, modules in groups.items():
        for m in modules:
            stack = []

            def pre(_m, _inp, name=name, stack=stack):
                rf = torch.autograd.profiler.record_function("bench::" + name)
                rf.__enter__()
                stack.append(rf)

            def post(_m, _inp, _out, stack=stack):
                stack.pop().__exit__(None, None, None)

            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
    return list(groups), handles


def profile_config(spec, args, model, d, device, autocast, sync):
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    kind, T, beam, mode = spec["model"], spec["length"], spec["beam"], spec["mode"]
    out_len, V = args.out_len, args.sizes["vocab"]
    labels, handles = _label_modules(model, kind)
    if mode == "generate":
        fn = make_runner(dict(spec, table="generate"), args, model, d, device, autocast)
    else:
        src, lengths, tgt, prev = random_batch(args.batch, T, V, out_len, device)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.1)

        def fn():
            opt.zero_grad(set_to_none=True)
            with autocast():
                if kind == "led":
                    glob = torch.zeros_like(src)
                    glob[:, 0] = 1
                    logits = model(input_ids=src, attention_mask=torch.ones_like(src),
                                   global_attention_mask=glob, decoder_input_ids=prev,
                                   use_cache=False).logits
                else:
                    logits = model(src, lengths, prev)[0]
            lp = F.log_softmax(logits.float(), dim=-1)
            with torch.autograd.profiler.record_function("bench::loss + backward"):
                F.nll_loss(lp.view(-1, V), tgt.view(-1), reduction="sum").backward()
            with torch.autograd.profiler.record_function("bench::optimizer"):
                opt.step()
        labels = labels + ["loss + backward", "optimizer"]
    fn()  # warm-up
    sync()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
        sync()
    wall = time.perf_counter() - t0
    for h in handles:
        h.remove()
    # plain timing without the profiler's overhead
    t0 = time.perf_counter()
    fn()
    sync()
    plain = time.perf_counter() - t0
    totals = {}
    for ev in prof.key_averages():
        if ev.key.startswith("bench::"):
            totals[ev.key[len("bench::"):]] = ev.cpu_time_total / 1e6
    for ev in prof.key_averages():  # fairseq calls the encoder without __call__ (no hooks)
        if ev.key == "EnsembleModel: forward_encoder" and not totals.get("encoder"):
            totals["encoder"] = ev.cpu_time_total / 1e6
    shares = {name: totals.get(name, 0.0) for name in labels}
    shares["rest"] = max(0.0, wall - sum(v for k, v in shares.items() if ": of which" not in k))
    top_ops = [(ev.key, ev.self_cpu_time_total / 1e6) for ev in
               sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
               if not ev.key.startswith("bench::")][:12]
    return {"profiled_s": wall, "plain_s": plain, "parts_s": shares, "top_ops_self_s": top_ops,
            "min_s": plain}


# ----------------------------------------------------------------------------- orchestration
def _child(func, payload, args, conn):
    try:
        conn.send(("ok", func(payload, args)))
    except Exception as exc:  # noqa: BLE001 - reported in the row
        oom = "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower()
        conn.send(("oom" if oom else "error",
                   f"{type(exc).__name__}: {str(exc)[:300]}\n{traceback.format_exc()[-1500:]}"))
    finally:
        conn.close()


def call_forked(func, payload, args):
    """func(payload, args) in a forked process -> (result or None, error message or None)."""
    if args.in_process:
        try:
            return func(payload, args), None
        except RuntimeError as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:300]}"
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(func, payload, args, child))
    proc.start()
    child.close()
    status, result = None, None
    if parent.poll(args.timeout):
        try:
            status, result = parent.recv()
        except EOFError:
            pass
    proc.join(5 if status else 0.1)
    if proc.is_alive():
        proc.kill()
        proc.join()
        if status is None:
            return None, f"timeout: stopped after {args.timeout:g} s (--timeout)"
    if status == "ok":
        return result, None
    if status in ("oom", "error"):
        return None, ("out of memory: " if status == "oom" else "") + result.splitlines()[0]
    code = proc.exitcode
    return None, (f"process killed by signal {-code} (out of memory?)" if code and code < 0
                  else f"process ended with code {code} and no result")


def measure(spec, args, warmup=None, repeat=None):
    """One configuration alone in a fresh process: memory, and its own times."""
    row = dict(spec)
    row["load_before"] = loadavg()
    est = estimate_gib(spec, args.sizes)
    row["est_gib"] = round(est, 1)
    if est > args.mem_limit_gb:
        row["skipped"] = f"estimated {est:.0f} GiB > --mem-limit-gb {args.mem_limit_gb:g}"
        return row
    t0 = time.perf_counter()
    solo = argparse.Namespace(**vars(args))
    if warmup is not None:
        solo.warmup = warmup
    if repeat is not None:
        solo.repeat = repeat
    result, error = call_forked(run_config, spec, solo)
    if error:
        row["error"] = error
    else:
        row.update(result)
    row["wall_s"] = time.perf_counter() - t0
    row["load_after"] = loadavg()
    return row


def measure_paired(rows, args):
    """Side-by-side times for the rows of one group that ran alone without trouble."""
    good = [r for r in rows if not r.get("skipped") and not r.get("error")]
    if len(good) < 2:
        return
    specs = [{k: r[k] for k in ("table", "model", "length", "beam", "batch") if k in r} for r in good]
    load_before = loadavg()
    result, error = call_forked(run_paired, specs, args)
    for r, res in zip(good, result or [{}] * len(good)):
        r["paired_load"] = f"{load_before} -> {loadavg()}"
        if error:
            r["paired_error"] = error
        else:
            r.update(res)


def plan(args):
    tables = names(args.tables, TABLES, "--tables")
    models = names(args.models, MODELS, "--models")
    lengths, gen_lengths, beams = ints(args.lengths), ints(args.gen_lengths), ints(args.beams)
    specs = []
    for table in tables:
        if table in ("train", "encoder"):
            for T in lengths:
                for m in models:
                    specs.append({"table": table, "model": m, "length": T, "batch": args.batch})
        elif table == "generate":
            for T in gen_lengths:
                for beam in beams:
                    for m in models:
                        specs.append({"table": table, "model": m, "length": T, "beam": beam,
                                      "batch": args.gen_batch})
        elif table == "decoder":
            for beam in beams:
                for S in ints(args.decoder_widths):
                    specs.append({"table": table, "model": "pyramidion", "length": S,
                                  "beam": beam})
        elif table == "profile":
            T, beam = max(gen_lengths), max(beams)
            for mode in ("generate", "train"):
                for m in models:
                    if m == "full":
                        continue
                    specs.append({"table": table, "model": m, "length": T if mode == "generate"
                                  else max(lengths), "beam": beam, "mode": mode,
                                  "batch": args.gen_batch if mode == "generate" else args.batch})
    return specs


def main(argv=None):
    args = parse_args(argv)
    if args.from_json:
        rows, metas = [], []
        for path in args.from_json:
            with open(path) as fh:
                data = json.load(fh)
            rows.extend(data["results"])
            metas.append(data["meta"])
        report(rows, metas, args)
        return rows

    import torch  # imported once here: every forked configuration inherits it
    import fairseq.options  # noqa: F401
    import fairseq.sequence_generator  # noqa: F401
    import deep_pyramidion  # noqa: F401

    logging.disable(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    led_note = None
    if "led" in names(args.models, MODELS, "--models"):
        try:
            transformers = import_led()
            led_version = transformers.__version__
        except ImportError as exc:
            led_note = f"transformers not installed or not importable ({exc})"
            led_version = None
    meta = {
        "machine": machine_info(args.device),
        "device": args.device,
        "dtype": "bfloat16 autocast" if args.device == "cuda" else "float32",
        "sizes": args.sizes,
        "quick": args.quick,
        "out_len": args.out_len, "batch": args.batch, "gen_batch": args.gen_batch,
        "repeat": args.repeat, "warmup": args.warmup, "stat": args.stat,
        "command": " ".join(["python", os.path.relpath(os.path.abspath(__file__), os.getcwd()),
                             *(argv if argv is not None else sys.argv[1:])]),
        "loadavg_start": loadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if "led" in args.models:
        meta["transformers"] = led_version if not led_note else led_note
    print("# " + json.dumps({k: meta[k] for k in ("machine", "device", "dtype", "loadavg_start")}))
    rows = []
    group_key = (lambda s: (s["table"], s["length"], s.get("beam"), s.get("mode")))
    for (table, *_), group in itertools.groupby(plan(args), key=group_key):
        paired = table in PAIRED_TABLES and not args.no_paired
        group_rows = []
        for spec in group:
            if spec["model"] == "led" and led_note:
                rows.append(dict(spec, skipped=led_note))
                continue
            if paired:  # alone: memory (after one step for training: AdamW state exists)
                row = measure(spec, args, warmup=1 if table == "train" else 0, repeat=1)
            else:
                row = measure(spec, args)
            rows.append(row)
            group_rows.append(row)
            print(short_line(row), flush=True)
        if paired:
            measure_paired(group_rows, args)
            for row in group_rows:
                if row.get("paired_times_s") or row.get("paired_error"):
                    print(paired_line(row), flush=True)
    meta["loadavg_end"] = loadavg()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "results": rows}, fh, indent=1)
    report(rows, [meta], args)
    return rows


def paired_line(row):
    what = f"  paired {row['model']:<10} T={row['length']:<6}" + \
        (f" beam={row['beam']:<3}" if "beam" in row else "")
    if row.get("paired_error"):
        return f"{what} -- {row['paired_error']}"
    times = ", ".join(f"{t:.3f}" for t in row["paired_times_s"])
    return f"{what} times [{times}] s  load {row['paired_load']}"


def short_line(row):
    what = f"{row['table']:<8} {row['model']:<10} T={row['length']:<6}"
    if "beam" in row:
        what += f" beam={row['beam']:<3}"
    if "mode" in row:
        what += f" {row['mode']}"
    if row.get("skipped") or row.get("error"):
        return f"{what} -- {row.get('skipped') or row.get('error')}"
    mem = row.get("peak_mib")
    mem = f" peak {mem:.0f} MiB step {row['step_peak_mib']:.0f} MiB" if mem and \
        row.get("step_peak_mib") is not None else ""
    return (f"{what} min {row['min_s']:.3f}s median {row.get('median_s', row['min_s']):.3f}s{mem}"
            f"  load {row['load_before']} -> {row['load_after']}")


# ----------------------------------------------------------------------------- report
def _fmt(v, digits=2):
    if v is None:
        return "-"
    return f"{v:.{digits}f}"


def _key(args):
    return "min_s" if args.stat == "min" else "median_s"


def tm(row, key):
    """The side-by-side time where there is one, else the configuration's own."""
    return row.get("paired_" + key) or row[key]


def report(rows, metas, args):
    """Print markdown tables with pair-by-pair ratios; plots when --plots is given."""
    key = _key(args)
    ok = [r for r in rows if not r.get("skipped") and not r.get("error")]

    def find(table, model, length, beam=None, mode=None):
        for r in ok:
            if (r["table"], r["model"], r["length"]) == (table, model, length) and \
                    r.get("beam") == beam and r.get("mode") == mode:
                return r
        return None

    def note(table, model, length, beam=None):
        for r in rows:
            if (r["table"], r["model"], r["length"]) == (table, model, length) and \
                    r.get("beam") == beam and (r.get("skipped") or r.get("error")):
                return r.get("skipped") or r.get("error")
        return None

    def models_in(table):
        return [m for m in MODELS if any(r["table"] == table and r["model"] == m for r in rows)]

    def lengths_in(table):
        return sorted({r["length"] for r in rows if r["table"] == table})

    out = []
    notes = []
    for table, title in (("train", "Training step (forward + backward + AdamW)"),
                         ("encoder", "Encoder forward (no gradients)")):
        if not any(r["table"] == table for r in rows):
            continue
        models = models_in(table)
        out.append(f"\n### {title}: time in s ({args.stat} of the timed runs, side by side where the models share a group), peak memory in MiB\n")
        head = "| input | " + " | ".join(
            f"{m} s | {m} peak | {m} step peak" for m in models) + " | "
        head += " | ".join(f"{m} / pyramidion time" for m in models if m != "pyramidion")
        head += " | pyramidion / blockwise step peak | pyramidion / blockwise peak |"
        out.append(head)
        out.append("|" + "---|" * (head.count("|") - 1))
        for T in lengths_in(table):
            cells = [f"{T}"]
            pyr = find(table, "pyramidion", T)
            for m in models:
                r = find(table, m, T)
                if r is None:
                    n = note(table, m, T)
                    if n:
                        notes.append(f"{table} {m} {T}: {n}")
                    cells += ["n/a" if n else "-", "-", "-"]
                else:
                    cells += [_fmt(tm(r, key), 3), _fmt(r.get("peak_mib"), 0),
                              _fmt(r.get("step_peak_mib"), 0)]
            for m in models:
                if m == "pyramidion":
                    continue
                r = find(table, m, T)
                cells.append(f"{tm(r, key) / tm(pyr, key):.2f}x" if r and pyr else "-")
            base = find(table, BASELINE, T)
            if pyr and base and pyr.get("step_peak_mib") and base.get("step_peak_mib"):
                cells.append(f"{pyr['step_peak_mib'] / base['step_peak_mib']:.2f}x")
                cells.append(f"{pyr['peak_mib'] / base['peak_mib']:.2f}x")
            else:
                cells += ["-", "-"]
            out.append("| " + " | ".join(cells) + " |")

    if any(r["table"] == "generate" for r in rows):
        models = models_in("generate")
        out.append(f"\n### Generation: time per document in s ({args.stat}), beam search, "
                   f"outputs forced to out_len tokens\n")
        head = "| input | beam | " + " | ".join(f"{m} s/doc" for m in models) + " | " + \
            " | ".join(f"{m} / pyramidion" for m in models if m != "pyramidion") + \
            " | pyramidion peak MiB | blockwise peak MiB |"
        out.append(head)
        out.append("|" + "---|" * (head.count("|") - 1))
        combos = sorted({(r["length"], r["beam"]) for r in rows if r["table"] == "generate"})
        for T, beam in combos:
            cells = [str(T), str(beam)]
            pyr = find("generate", "pyramidion", T, beam)
            for m in models:
                r = find("generate", m, T, beam)
                if r is None:
                    n = note("generate", m, T, beam)
                    if n:
                        notes.append(f"generate {m} {T} beam {beam}: {n}")
                cells.append(_fmt(tm(r, key) / r.get("batch", 1), 3) if r else "n/a")
            for m in models:
                if m == "pyramidion":
                    continue
                r = find("generate", m, T, beam)
                cells.append(f"{tm(r, key) / tm(pyr, key):.2f}x" if r and pyr else "-")
            base = find("generate", BASELINE, T, beam)
            cells += [_fmt(pyr.get("peak_mib") if pyr else None, 0),
                      _fmt(base.get("peak_mib") if base else None, 0)]
            out.append("| " + " | ".join(cells) + " |")

    if any(r["table"] == "decoder" for r in rows):
        out.append("\n### Decoder alone: time per generated token in ms (beam rows x one "
                   "document, incremental decoding)\n")
        out.append("| beam | encoder_out width | per token ms | per token without output "
                   "projection ms | ratio to the widest |")
        out.append("|---|---|---|---|---|")
        dec = sorted([r for r in ok if r["table"] == "decoder"], key=lambda r: (r["beam"], r["length"]))
        for r in dec:
            widest = max((q for q in dec if q["beam"] == r["beam"]), key=lambda q: q["length"])
            out.append(f"| {r['beam']} | {r['length']} | {r['per_token_s'] * 1e3:.2f} | "
                       f"{r['per_token_no_proj_s'] * 1e3:.2f} | "
                       f"{widest['per_token_s'] / r['per_token_s']:.2f}x "
                       f"({widest['per_token_no_proj_s'] / r['per_token_no_proj_s']:.2f}x without "
                       f"the projection) |")

    prof = [r for r in ok if r["table"] == "profile"]
    if prof:
        out.append("\n### Profile (torch.profiler, inclusive CPU time of one call, s)\n")
        parts = []
        for r in prof:
            for p in r["parts_s"]:
                if p not in parts:
                    parts.append(p)
        out.append("| mode | model | input | beam | " + " | ".join(parts) +
                   " | profiled total | unprofiled |")
        out.append("|" + "---|" * (len(parts) + 6))
        for r in prof:
            tot = r["profiled_s"]
            cells = [r["mode"], r["model"], str(r["length"]), str(r["beam"])]
            cells += [f"{r['parts_s'].get(p, 0):.2f} ({100 * r['parts_s'].get(p, 0) / tot:.0f}%)"
                      for p in parts]
            cells += [f"{tot:.2f}", f"{r['plain_s']:.2f}"]
            out.append("| " + " | ".join(cells) + " |")
        for r in prof:
            ops = ", ".join(f"{k} {v:.2f}" for k, v in r["top_ops_self_s"][:8])
            out.append(f"\n{r['mode']} {r['model']}: top ops by self time (s): {ops}")

    for r in rows:
        if (r.get("skipped") or r.get("error")) and r["table"] in ("decoder", "profile"):
            notes.append(f"{r['table']} {r['model']} {r['length']}: {r.get('skipped') or r.get('error')}")
    if notes:
        out.append("\nNot measured:\n" + "\n".join(f"- {n}" for n in notes))
    loads = [(r["table"], r["model"], r["length"], r.get("load_before"), r.get("load_after"))
             for r in rows if r.get("load_before")]
    if loads:
        out.append("\nLoad average (1/5/15 min) before -> after each configuration:")
        for t, m, T, a, b in loads:
            out.append(f"- {t} {m} {T}: {a} -> {b}")
    for meta in metas:
        out.append(f"\nCommand: `{meta.get('command')}`; machine: {json.dumps(meta.get('machine'))}; "
                   f"load {meta.get('loadavg_start')} -> {meta.get('loadavg_end')}")
    print("\n".join(out))
    if args.plots:
        plot(rows, args)


def plot(rows, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = _key(args)
    os.makedirs(args.plots, exist_ok=True)
    ok = [r for r in rows if not r.get("skipped") and not r.get("error")]
    style = {"pyramidion": ("C0", "o"), "blockwise": ("C1", "s"), "full": ("C2", "^"),
             "led": ("C3", "D")}
    written = []
    for table, title in (("train", "training step (fwd + bwd + AdamW)"),
                         ("encoder", "encoder forward")):
        sel = [r for r in ok if r["table"] == table]
        if not sel:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for m in MODELS:
            pts = sorted((r["length"], tm(r, key), r.get("peak_mib"), r.get("step_peak_mib"))
                         for r in sel if r["model"] == m)
            if not pts:
                continue
            c, mk = style[m]
            xs = [p[0] for p in pts]
            axes[0].plot(xs, [p[1] for p in pts], marker=mk, color=c, label=m)
            if all(p[2] for p in pts):
                axes[1].plot(xs, [p[2] / 1024 for p in pts], marker=mk, color=c, label=f"{m} peak")
            if all(p[3] is not None for p in pts):
                axes[1].plot(xs, [p[3] / 1024 for p in pts], marker=mk, color=c, ls="--",
                             label=f"{m} step peak")
        for ax, ylabel in zip(axes, ("time (s)", "memory (GiB)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("input length (tokens)")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        axes[0].set_title(f"{title}: time")
        axes[1].set_title(f"{title}: memory (solid: process peak, dashed: step)")
        fig.tight_layout()
        path = os.path.join(args.plots, f"benchmark_{table}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    gen = [r for r in ok if r["table"] == "generate"]
    if gen:
        beams = sorted({r["beam"] for r in gen})
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        models = [m for m in MODELS if any(r["model"] == m for r in gen)]
        width = 0.8 / max(1, len(models))
        lengths = sorted({r["length"] for r in gen})
        groups = [(T, b) for T in lengths for b in beams]
        for i, m in enumerate(models):
            vals = []
            for T, b in groups:
                r = next((r for r in gen if (r["model"], r["length"], r["beam"]) == (m, T, b)), None)
                vals.append(tm(r, key) / r.get("batch", 1) if r else 0)
            c, _ = style[m]
            ax.bar([g + i * width for g in range(len(groups))], vals, width, color=c, label=m)
        ax.set_xticks([g + width * (len(models) - 1) / 2 for g in range(len(groups))])
        ax.set_xticklabels([f"{T} tokens\nbeam {b}" for T, b in groups])
        ax.set_ylabel("time per document (s)")
        ax.set_title(f"generation, outputs forced to {gen[0].get('decoder_steps', '?')} tokens")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(args.plots, "benchmark_generate.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    for p in written:
        print(f"# wrote {p}")


if __name__ == "__main__":
    main()
