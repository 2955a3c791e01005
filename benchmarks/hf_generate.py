"""python -m benchmarks.hf_generate: the Hugging Face export's generate() against the fairseq path
on the same weights and against Hugging Face LED, side by side in one process.

    python -m benchmarks.hf_generate --family bart-base --length 8192 --beam 4 --out-len 128 \\
        --repeat 2 --json docs/bench/hf_generate_cpu.json
    python -m benchmarks.hf_generate --length 2048 --out-len 32 --profile prof/   # where time goes

One pyramidion (benchmarks/models.py's, random weights, eval mode) is built with fairseq and turned
into PyramidionForConditionalGeneration in memory (fairseq_plugin/export_hf.py: hf_model, what
pyramidion-export-hf writes); LED is benchmarks/models.py's led_model of the same family's sizes
(led-base's shape for --family bart-base: window 1024, global attention on the first token; random
weights). All decode one document of --length tokens with beam --beam and every output forced to
--out-len + 1 decoder steps (fairseq: min_len = max_len_b = out_len, then </s>; the export, by the
exporter's mapping: min_new_tokens = out_len, max_new_tokens = out_len + 1; LED, as
benchmarks/generate.py runs it: min_new_tokens = max_new_tokens = out_len + 1), so all run the
same decoder steps. The runs alternate (fairseq, hf, led, fairseq, ...) and the minimum of each is
reported, with the ratios, the decoder steps each ran, whether fairseq and the export gave the same
tokens, and the load average before and after (a shared CPU disturbs the figures). --no-led leaves
LED out (at 8192 tokens it takes several times as long as the others).

--profile DIR runs each path once under cProfile instead (DIR/{fairseq,hf,led}.prof, readable with
python -m pstats) and logs the functions with the most time of their own and the calls of the
decoder's building blocks (attention, layers, output projection) of both.
"""
import argparse
import json
import logging
import os
import platform
import time

logger = logging.getLogger("benchmarks.hf_generate")

NAMES = ("fairseq", "hf", "led")


def build(family: str, length: int, out_len: int):
    """(fairseq model, its dictionary, the export in memory, the sizes)."""
    from benchmarks.models import FAMILIES, fairseq_model
    from deep_pyramidion.fairseq_plugin.export_hf import hf_model

    full, quick = FAMILIES["bart-base" if family == "bart-base" else "deep"]
    sizes = quick if family == "quick" else full
    model, task, d = fairseq_model("pyramidion", length, sizes, out_len)
    model.eval()
    hf, _, _ = hf_model(task.args if hasattr(task, "args") else model.args, model.state_dict(),
                        len(d))
    return model, d, hf, sizes


def runners(args):
    """{name: a call decoding the document once, returning its tokens}, each with ``steps``
    (the decoder steps of its last call) set as an attribute."""
    import torch
    from fairseq.sequence_generator import SequenceGenerator

    from benchmarks.models import led_masks, led_model, random_batch
    from deep_pyramidion.hf.export import generation_config

    model, d, hf, sizes = build(args.family, args.length, args.out_len)
    src, lengths, _, _ = random_batch(1, args.length, sizes["vocab"], args.out_len, "cpu")
    generator = SequenceGenerator([model], d, beam_size=args.beam, max_len_a=0,
                                  max_len_b=args.out_len, min_len=args.out_len)
    sample = {"net_input": {"src_tokens": src, "src_lengths": lengths}}
    # the generation config pyramidion-export-hf writes for these settings
    hf.generation_config = generation_config(hf.config, dict(
        beam=args.beam, lenpen=1.0, min_len=args.out_len, max_len_b=args.out_len,
        no_repeat_ngram_size=0))

    def run_fairseq():
        with torch.no_grad():
            tokens = generator.generate([model], sample)[0][0]["tokens"].tolist()
        run_fairseq.steps = len(tokens)                     # out_len tokens + </s>
        return tokens

    def run_hf():
        with torch.no_grad():
            out = hf.generate(input_ids=src, attention_mask=torch.ones_like(src))
        run_hf.steps = out.size(1) - 1                      # minus the decoder start token
        return out[0, 1:].tolist()

    calls = {"fairseq": run_fairseq, "hf": run_hf}
    if args.led:
        led = led_model(args.length, sizes, args.out_len).eval()
        attn, glob = led_masks(src)

        def run_led():
            with torch.no_grad():
                out = led.generate(
                    input_ids=src, attention_mask=attn, global_attention_mask=glob,
                    num_beams=args.beam, num_return_sequences=1, do_sample=False,
                    max_new_tokens=args.out_len + 1, min_new_tokens=args.out_len + 1,
                    length_penalty=1.0, no_repeat_ngram_size=0, use_cache=True)
            run_led.steps = out.size(1) - 1
            return out[0, 1:].tolist()

        calls["led"] = run_led
    return calls


def profile(calls, out_dir: str, top: int = 25) -> dict:
    """One cProfile run of each call; DIR/<name>.prof, and the biggest entries in the log."""
    import cProfile
    import io
    import pstats

    os.makedirs(out_dir, exist_ok=True)
    seconds = {}
    for name, fn in calls.items():
        fn()                                                # warm-up: first-call costs aside
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(fn)
        seconds[name] = time.perf_counter() - start
        path = os.path.join(out_dir, f"{name}.prof")
        profiler.dump_stats(path)
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text).sort_stats("tottime")
        stats.print_stats(top)
        logger.info("%s: %.2f s under cProfile (%s); by own time:\n%s", name, seconds[name], path,
                    text.getvalue())
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hf_generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=("bart-base", "deep", "quick"), default="bart-base")
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--out-len", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--led", action=argparse.BooleanOptionalAction, default=True,
                        help="also time LED of the family's sizes (default: yes)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--profile", metavar="DIR",
                        help="profile one run of each path with cProfile instead of timing")
    args = parser.parse_args(argv)
    for flag in ("length", "beam", "out_len", "repeat"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    from benchmarks.common import loadavg, machine_info

    if args.threads:
        torch.set_num_threads(args.threads)
    calls = runners(args)
    settings = {"family": args.family, "length": args.length, "beam": args.beam,
                "out_len": args.out_len, "threads": torch.get_num_threads()}
    if args.profile:
        return {**settings, "profiled_seconds": profile(calls, args.profile)}

    load_before = loadavg()
    times = {name: [] for name in calls}
    # CPU time of this process: other jobs on a shared machine lengthen the wall time, not this
    # (with --threads 1 it is the time the one thread computed)
    cpu = {name: [] for name in calls}
    tokens = {}
    for i in range(args.repeat):
        for name, fn in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            tokens[name] = fn()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            logger.info("run %d %-7s %.2f s, %.2f s CPU (%d decoder steps)", i + 1, name,
                        times[name][-1], cpu[name][-1], fn.steps)
    best = {k: min(v) for k, v in times.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    result = {
        **settings, "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "machine": machine_info("cpu"), "platform": platform.platform(),
        "load_before": load_before, "load_after": loadavg(),
        "seconds": times, "min_seconds": best, "cpu_seconds": cpu, "min_cpu_seconds": best_cpu,
        "decoder_steps": {name: fn.steps for name, fn in calls.items()},
        "hf_over_fairseq": best["hf"] / best["fairseq"],
        "hf_over_fairseq_cpu": best_cpu["hf"] / best_cpu["fairseq"],
        "same_tokens": tokens["fairseq"] == tokens["hf"],
    }
    if "led" in best:
        result["led_over_hf"] = best["led"] / best["hf"]
    logger.info("fairseq %.2f s, hf %.2f s%s: hf / fairseq = %.2fx (CPU time %.2f / %.2f s: "
                "%.2fx)%s; same tokens (fairseq, hf): %s; load %s -> %s",
                best["fairseq"], best["hf"], f", led {best['led']:.2f} s" if "led" in best else "",
                result["hf_over_fairseq"], best_cpu["fairseq"], best_cpu["hf"],
                result["hf_over_fairseq_cpu"],
                f", led / hf = {result['led_over_hf']:.2f}x" if "led" in best else "",
                result["same_tokens"], load_before, result["load_after"])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
            out.write("\n")
    return result


if __name__ == "__main__":
    main()
