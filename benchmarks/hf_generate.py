"""python -m benchmarks.hf_generate: the Hugging Face export's generate() against the fairseq path
on the same weights, side by side in one process.

    python -m benchmarks.hf_generate --family bart-base --length 8192 --beam 4 --out-len 128 \\
        --repeat 2 --json docs/bench/hf_generate_cpu.json

One pyramidion (benchmarks/models.py's, random weights, eval mode) is built with fairseq and turned
into PyramidionForConditionalGeneration in memory (fairseq_plugin/export_hf.py: hf_model, what
pyramidion-export-hf writes). Both decode one document of --length tokens with beam --beam and every
output forced to --out-len tokens + </s> (fairseq: min_len = max_len_b = out_len; transformers,
by the export's mapping: min_new_tokens = out_len, max_new_tokens = out_len + 1), so both run the
same decoder steps; the runs
alternate (fairseq, hf, fairseq, hf, ...) and the minimum of each is reported, with the ratio and
whether the two gave the same tokens. LED is not timed here: benchmarks/generate.py times it
(BENCHMARKS.md: over 120 s per document at 8192 tokens on this CPU).
"""
import argparse
import json
import logging
import platform
import time

logger = logging.getLogger("benchmarks.hf_generate")


def build(family: str, length: int, out_len: int):
    """(fairseq model, its dictionary, the export in memory)."""
    from benchmarks.models import FAMILIES, fairseq_model
    from deep_pyramidion.fairseq_plugin.export_hf import hf_model

    full, quick = FAMILIES["bart-base" if family == "bart-base" else "deep"]
    sizes = quick if family == "quick" else full
    model, task, d = fairseq_model("pyramidion", length, sizes, out_len)
    model.eval()
    hf, _, _ = hf_model(task.args if hasattr(task, "args") else model.args, model.state_dict(),
                        len(d))
    return model, d, hf, sizes


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hf_generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=("bart-base", "deep", "quick"), default="bart-base")
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--out-len", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch
    from fairseq.sequence_generator import SequenceGenerator

    from benchmarks.models import random_batch

    if args.threads:
        torch.set_num_threads(args.threads)
    model, d, hf, sizes = build(args.family, args.length, args.out_len)
    src, lengths, _, _ = random_batch(1, args.length, sizes["vocab"], args.out_len, "cpu")
    generator = SequenceGenerator([model], d, beam_size=args.beam, max_len_a=0,
                                  max_len_b=args.out_len, min_len=args.out_len)
    sample = {"net_input": {"src_tokens": src, "src_lengths": lengths}}

    def run_fairseq():
        with torch.no_grad():
            return generator.generate([model], sample)[0][0]["tokens"].tolist()

    # the generation config pyramidion-export-hf would write for these settings
    from deep_pyramidion.fairseq_plugin.export_hf import generation_config

    hf.generation_config = generation_config(hf.config, dict(
        beam=args.beam, lenpen=1.0, min_len=args.out_len, max_len_b=args.out_len,
        no_repeat_ngram_size=0))

    def run_hf():
        with torch.no_grad():
            out = hf.generate(input_ids=src)
        return out[0, 1:].tolist()

    times = {"fairseq": [], "hf": []}
    tokens = {}
    for i in range(args.repeat):
        for name, fn in (("fairseq", run_fairseq), ("hf", run_hf)):
            start = time.perf_counter()
            tokens[name] = fn()
            times[name].append(time.perf_counter() - start)
            logger.info("run %d %-7s %.2f s (%d tokens)", i + 1, name, times[name][-1],
                        len(tokens[name]))
    best = {k: min(v) for k, v in times.items()}
    result = {
        "family": args.family, "length": args.length, "beam": args.beam, "out_len": args.out_len,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "transformers": __import__("transformers").__version__, "machine": platform.processor()
        or platform.machine(), "seconds": times, "min_seconds": best,
        "hf_over_fairseq": best["hf"] / best["fairseq"],
        "same_tokens": tokens["fairseq"] == tokens["hf"],
    }
    logger.info("fairseq %.2f s, hf %.2f s: hf / fairseq = %.2fx; same tokens: %s",
                best["fairseq"], best["hf"], result["hf_over_fairseq"], result["same_tokens"])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
            out.write("\n")
    return result


if __name__ == "__main__":
    main()
