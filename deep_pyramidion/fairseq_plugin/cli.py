"""The adapter's command lines: ``pyramidion-summarize`` and ``scripts/highlight.py``.

``pyramidion-summarize``: one document per line in, one summary per line out.

    pyramidion-summarize --checkpoint runs/aclsum/checkpoint_best.pt --data data-bin/aclsum \\
        --sentencepiece-model data-bin/aclsum/spm.model data/aclsum/test-A.src > hyps.txt
    cat paper.txt | tr '\\n' ' ' | pyramidion-summarize --checkpoint ... --data ... -

Output line i is the summary of input line i: the counts always match. An empty (or
whitespace-only) input line is an error that names the line (exit 1) and nothing is generated, so
a line is never dropped or silently replaced. Summaries go to stdout; everything else (progress,
truncation of long documents, errors) goes to stderr through ``logging``. Sentences of a summary
are joined with " <q> " (the format of the data's .tgt files, which scripts/score.py reads);
``--sentence-separator " "`` gives plain text.
"""
import argparse
import logging
import os
import sys
import warnings
from typing import List, Optional, TextIO

logger = logging.getLogger("pyramidion-summarize")
highlight_logger = logging.getLogger("highlight")
HIGHLIGHT_DOC = """Show which input tokens the encoder's poolers kept: the paper's "highlighting".

    python scripts/highlight.py --checkpoint runs/aclsum/checkpoint_best.pt --data data-bin/aclsum \\
        --input data/aclsum/test-A.src --line 1 --out highlight/
    python scripts/highlight.py --checkpoint CKPT --data DATA_BIN --text "raw document text" --out DIR

Writes OUT/highlight.html (the document with every token shaded by its weight, one section per
pooling layer, and the most-kept passages listed), OUT/highlight.png (a heat strip per pooling
layer over the token positions) and OUT/weights.json (the numbers). What a weight is:
deep_pyramidion/analysis/highlight.py.
"""


class InputError(Exception):
    pass


def read_documents(stream: TextIO, name: str) -> List[str]:
    """Lines of ``stream``; an empty line raises InputError naming it (1-based)."""
    docs = []
    for lineno, line in enumerate(stream, start=1):
        text = line.rstrip("\n").rstrip("\r")
        if not text.strip():
            raise InputError(
                f"{name}:{lineno}: empty line; every line must hold one document (remove the line "
                "or put text on it: output line N is the summary of input line N)")
        docs.append(text)
    return docs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyramidion-summarize", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", default="-", metavar="FILE|-",
                        help="documents, one per line (default -: stdin)")
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="the trained model (fairseq checkpoint .pt)")
    parser.add_argument("--data", required=True, metavar="DATA_BIN",
                        help="binarized data folder with the model's dictionary (dict.src.txt)")
    parser.add_argument("--sentencepiece-model", metavar="SPM",
                        help="sentencepiece model (default: DATA_BIN/spm.model)")
    parser.add_argument("--no-bpe", action="store_true",
                        help="input is already split into dictionary tokens (no sentencepiece)")
    parser.add_argument("--beam", type=int, default=4, help="beam size (default 4)")
    parser.add_argument("--min-len", type=int, help="minimum summary length in tokens")
    parser.add_argument("--max-len-b", type=int,
                        help="maximum summary length in tokens (default: the checkpoint's, 200)")
    parser.add_argument("--lenpen", type=float, help="length penalty (default 1.0)")
    parser.add_argument("--no-repeat-ngram-size", type=int, help="block repeated n-grams of this size")
    parser.add_argument("--max-source-positions", type=int,
                        help="read up to N source tokens (default: the checkpoint's); longer "
                             "documents are truncated with a warning")
    parser.add_argument("--batch-size", type=int, default=8, help="documents per batch (default 8)")
    parser.add_argument("--sentence-separator", default=" <q> ",
                        help='joins the sentences of a summary (default " <q> ")')
    parser.add_argument("--cuda", action="store_true", help="run on the GPU")
    parser.add_argument("-v", "--verbose", action="store_true", help="log fairseq's messages too")
    return parser


def summarize_main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr,
                        force=True)  # fairseq's import already configured the root logger
    if not args.verbose:
        warnings.filterwarnings("ignore", message=".*pin_memory.*")
    logger.setLevel(logging.INFO)
    logging.getLogger("deep_pyramidion").setLevel(logging.INFO)

    for flag, value in (("--beam", args.beam), ("--batch-size", args.batch_size)):
        if value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    for flag, value in (("--max-source-positions", args.max_source_positions),
                        ("--max-len-b", args.max_len_b)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    if not os.path.isfile(args.checkpoint):
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    if not os.path.isdir(args.data):
        parser.error(f"--data {args.data}: no such folder")
    if args.sentencepiece_model and args.no_bpe:
        parser.error("--sentencepiece-model and --no-bpe exclude each other")
    if args.sentencepiece_model and not os.path.isfile(args.sentencepiece_model):
        parser.error(f"--sentencepiece-model {args.sentencepiece_model}: no such file")
    if not args.no_bpe and not args.sentencepiece_model and \
            not os.path.isfile(os.path.join(args.data, "spm.model")):
        parser.error(f"--sentencepiece-model not given and no {os.path.join(args.data, 'spm.model')}")

    # read (and check) every document before the model loads: a bad line fails fast
    name = "<stdin>" if args.input == "-" else args.input
    try:
        if args.input == "-":
            docs = read_documents(sys.stdin, name)
        else:
            with open(args.input, encoding="utf-8") as stream:
                docs = read_documents(stream, name)
    except OSError as err:
        logger.error("cannot read %s: %s", name, err)
        return 1
    except UnicodeDecodeError as err:
        logger.error("%s: not UTF-8 text (%s)", name, err)
        return 1
    except InputError as err:
        logger.error("%s", err)
        return 1
    if not docs:
        logger.warning("%s holds no documents: nothing to summarize", name)
        return 0

    from deep_pyramidion.fairseq_plugin.hub import from_pretrained

    overrides = {"batch_size": args.batch_size, "cpu": not args.cuda}
    if args.max_source_positions is not None:
        overrides["max_source_positions"] = args.max_source_positions
    ckpt = os.path.abspath(args.checkpoint)
    try:
        hub = from_pretrained(os.path.dirname(ckpt), checkpoint_file=os.path.basename(ckpt),
                              data_name_or_path=os.path.abspath(args.data),
                              bpe=None if args.no_bpe else "sentencepiece",
                              sentencepiece_model=args.sentencepiece_model, **overrides)
    except (FileNotFoundError, ValueError) as err:
        logger.error("%s", err)
        return 1
    if args.cuda:
        hub = hub.cuda()
    hub.eval()

    gen = {k: v for k, v in (("min_len", args.min_len), ("max_len_b", args.max_len_b),
                             ("lenpen", args.lenpen),
                             ("no_repeat_ngram_size", args.no_repeat_ngram_size)) if v is not None}
    if "max_len_b" in gen:
        gen["max_len_a"] = 0
    logger.info("summarizing %d documents from %s", len(docs), name)
    step = max(args.batch_size * 8, 1)
    written = 0
    for start in range(0, len(docs), step):
        chunk = docs[start:start + step]
        labels = [f"{name}:{start + i + 1}" for i in range(len(chunk))]
        summaries = hub.summarize(chunk, beam=args.beam, sentence_separator=args.sentence_separator,
                                  names=labels, **gen)
        for summary in summaries:
            sys.stdout.write(summary.replace("\n", " ") + "\n")
        sys.stdout.flush()
        written += len(summaries)
        logger.info("%d / %d documents", written, len(docs))
    if written != len(docs):  # summarize() guarantees this; a last guard for the line contract
        logger.error("wrote %d summaries for %d documents", written, len(docs))
        return 1
    return 0



class HighlightInputError(Exception):
    pass


def read_document(path: str, line: int) -> str:
    count = 0
    with open(path, encoding="utf-8") as stream:
        for count, text in enumerate(stream, start=1):
            if count == line:
                if not text.strip():
                    raise HighlightInputError(f"{path}:{line}: empty line")
                return text
    raise HighlightInputError(f"--line {line}: {path} has only {count} lines")


def highlight_main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/highlight.py", description=HIGHLIGHT_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="fairseq checkpoint (.pt)")
    parser.add_argument("--data", required=True, metavar="DATA_BIN",
                        help="binarized data folder with the model's dictionary")
    parser.add_argument("--sentencepiece-model", metavar="SPM",
                        help="sentencepiece model (default: DATA_BIN/spm.model)")
    parser.add_argument("--no-bpe", action="store_true", help="the text is already in dictionary tokens")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", metavar="FILE", help="documents, one per line (see --line)")
    src.add_argument("--text", help="the document itself")
    parser.add_argument("--line", type=int, default=1, help="which line of --input (1-based, default 1)")
    parser.add_argument("--max-source-positions", type=int,
                        help="read up to N tokens (default: the checkpoint's)")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    highlight_logger.setLevel(logging.INFO)
    logging.getLogger("deep_pyramidion").setLevel(logging.INFO)
    if args.line < 1:
        parser.error("--line must be >= 1")
    if args.no_bpe and args.sentencepiece_model:
        parser.error("--no-bpe and --sentencepiece-model contradict each other: give one")
    if not os.path.isfile(args.checkpoint):
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    if args.input is not None and not os.path.isfile(args.input):
        parser.error(f"--input {args.input}: no such file")
    if args.max_source_positions is not None and args.max_source_positions < 2:
        parser.error("--max-source-positions must be >= 2")
    from deep_pyramidion.analysis.highlight import HighlightError, highlight
    from deep_pyramidion.fairseq_plugin.hub import from_pretrained

    try:
        if args.input is not None:
            text = read_document(args.input, args.line)
            name = f"{os.path.basename(args.input)}:{args.line}"
        else:
            text, name = args.text, "--text"

        overrides = {"cpu": True}
        if args.max_source_positions:
            overrides["max_source_positions"] = args.max_source_positions
        ckpt = os.path.abspath(args.checkpoint)
        hub = from_pretrained(os.path.dirname(ckpt), checkpoint_file=os.path.basename(ckpt),
                              data_name_or_path=os.path.abspath(args.data),
                              bpe=None if args.no_bpe else "sentencepiece",
                              sentencepiece_model=args.sentencepiece_model, **overrides)
        result = highlight(hub, text, args.out, name)
    except (HighlightInputError, HighlightError, FileNotFoundError, ValueError) as err:
        highlight_logger.error("%s", err)
        return 1
    for info in result["layers"]:
        highlight_logger.info("layer %d: %d -> %d tokens, weights sum to %.2f", info["layer"],
                              info["n_in"], info["n_out"], info["weight_sum"])
    highlight_logger.info("wrote %s and %s", result["html"], result["png"])
    return 0



CONVERT_DOC = """Convert a pretrained BART into a long-input pyramidion (LED's recipe).

    pyramidion-convert bart.base/ bart-8k/ --max-source-positions 8192
    pyramidion-convert hf-bart-large-cnn/ bart-large-16k/ --max-source-positions 16384 \\
        --arch pyramidion_bart_large

SRC_DIR is recognised by its files: a fairseq BART (model.pt + dict.txt, as fairseq distributes
bart.base / bart.large / bart.large.cnn) or a Hugging Face BART (config.json, model.safetensors or
pytorch_model.bin, vocab.json + merges.txt), read locally (nothing is downloaded). OUT_DIR gets
model.pt, dict.txt (+ dict.src.txt, dict.tgt.txt), the BPE files encoder.json + vocab.bpe and
convert.json (what was mapped, added and left out). Fine-tune with fairseq-train
--finetune-from-model OUT_DIR/model.pt; see the README's "Starting from a pretrained BART".

Exit status: 0 converted, 1 the source cannot be converted or OUT_DIR cannot be written (one line
on stderr says why), 2 usage.
"""


def convert_main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="pyramidion-convert", description=CONVERT_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src_dir", metavar="SRC_DIR", help="the pretrained BART")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="where the pyramidion is written")
    parser.add_argument("--max-source-positions", type=int, required=True, metavar="N",
                        help="source tokens the encoder reads (>= the pretrained positions)")
    parser.add_argument("--arch", choices=("pyramidion_bart_base", "pyramidion_bart_large"),
                        help="family defaults (default: by the source's encoder layers)")
    parser.add_argument("--enc-layers-and-token-width", metavar="DICT",
                        help="pooling schedule of the new poolers; the fine-tuning command must "
                             "name the same layers (default: half-way 2x the pretrained positions, "
                             "after the last layer the pretrained positions)")
    parser.add_argument("--encoder-json", metavar="PATH",
                        help="GPT-2 BPE vocabulary, for a fairseq source that does not hold one")
    parser.add_argument("--vocab-bpe", metavar="PATH", help="GPT-2 BPE merges, with --encoder-json")
    parser.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR")
    parser.add_argument("--seed", type=int, default=1, help="seed of the new poolers (default 1)")
    args = parser.parse_args(argv)
    if bool(args.encoder_json) != bool(args.vocab_bpe):
        parser.error("--encoder-json and --vocab-bpe go together")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    from deep_pyramidion.fairseq_plugin.bart import ConversionError
    from deep_pyramidion.fairseq_plugin.checkpoint_safety import CheckpointError
    from deep_pyramidion.fairseq_plugin.convert import convert

    try:
        report = convert(args.src_dir, args.out_dir, args.max_source_positions, arch=args.arch,
                         force=args.force, encoder_json=args.encoder_json,
                         vocab_bpe=args.vocab_bpe, schedule=args.enc_layers_and_token_width,
                         seed=args.seed)
    except (ConversionError, CheckpointError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    logging.getLogger("pyramidion-convert").info(
        "wrote %s (%s, %d source positions, schedule %s)", args.out_dir, report["arch"],
        report["max_source_positions"], report["enc_layers_and_token_width"])
    return 0
