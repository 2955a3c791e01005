"""The command lines that run a model: ``pyramidion-summarize``, ``pyramidion-highlight``
(``scripts/highlight.py``) and ``pyramidion-convert`` (deep_pyramidion/commands.py lists them).

They live here, not in fairseq_plugin/, because importing anything under fairseq_plugin/ imports
fairseq (and applies its patches): this module imports neither torch nor fairseq, every command
parses and checks its arguments first and loads the fairseq adapter only then (``_logging``), so
``--help`` and a usage error are quick and print nothing of fairseq's.
``deep_pyramidion.fairseq_plugin.cli`` still offers these names (the entry points of earlier
installs).

They run in the harness every command does (plumbing/cli.py): an expected failure ends with one
line, ``error: ...``, naming the flag, file or line, never a traceback; exit status 0 ok, 1 bad
input (a file, a document, a checkpoint), 2 usage, 130 interrupted, 141 stdout closed early
(``| head``, quietly). Documents are read by the project's one line rule (plumbing/lines.py: a
line ends at ``\\n``; files and stdin alike), every line checked before the model loads. Nothing
is written over without being asked: highlight's ``--out`` and convert's OUT_DIR are built beside
the old folder and swapped in only when complete (plumbing/files.py).
"""
import argparse
import logging
import os
import sys
import warnings
from typing import List, Optional

from deep_pyramidion.config import PyramidionConfig
from deep_pyramidion.limits import MAX_SOURCE_POSITIONS, check_max_source_positions
from deep_pyramidion.plumbing.cli import EXIT_OK, exit_codes_help, run_cli, setup_logging
from deep_pyramidion.plumbing.errors import DataError
from deep_pyramidion.plumbing.files import StagedDir, check_not_overlapping, owned_by
from deep_pyramidion.plumbing.lines import iter_document_lines

logger = logging.getLogger("pyramidion-summarize")
highlight_logger = logging.getLogger("highlight")
convert_logger = logging.getLogger("pyramidion-convert")


# ---------------------------------------------------------------------------------- shared
def _logging(verbose: bool = False) -> None:
    """Load the fairseq adapter (fairseq, the model's registration, the patches), then set up
    logging: called once the arguments are parsed and checked."""
    import deep_pyramidion.fairseq_plugin  # noqa: F401

    # fairseq's import pointed the root logger at stdout, where the summaries go
    setup_logging(logging.INFO if verbose else logging.WARNING, take_over=True)
    if not verbose:
        warnings.filterwarnings("ignore", message=".*pin_memory.*")
    for name in ("deep_pyramidion", logger.name, highlight_logger.name, convert_logger.name):
        logging.getLogger(name).setLevel(logging.INFO)
    # the patches line, when the adapter's import came before any handler (which patches are on,
    # and a warning when some are switched off)
    from deep_pyramidion.fairseq_plugin import patches

    patches.log_pending()


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="the trained model (fairseq checkpoint .pt)")
    parser.add_argument("--data", required=True, metavar="DATA_BIN",
                        help="binarized data folder with the model's dictionary (dict.src.txt)")
    parser.add_argument("--sentencepiece-model", metavar="SPM",
                        help="sentencepiece model (default: DATA_BIN/spm.model when there is one)")
    parser.add_argument("--gpt2-encoder-json", metavar="PATH",
                        help="a pretrained BART's BPE vocabulary (default: DATA_BIN/encoder.json "
                             "when there is no spm.model)")
    parser.add_argument("--gpt2-vocab-bpe", metavar="PATH",
                        help="a pretrained BART's BPE merges (default: DATA_BIN/vocab.bpe)")
    parser.add_argument("--no-bpe", action="store_true",
                        help="input is already split into dictionary tokens (no BPE)")
    parser.add_argument("--max-source-positions", type=int,
                        help="read up to N source tokens (default: the checkpoint's; at most "
                             f"{MAX_SOURCE_POSITIONS}); longer documents are truncated with a "
                             "warning")


def _check_model_args(parser, args) -> None:
    if args.max_source_positions is not None and args.max_source_positions < 2:
        parser.error("--max-source-positions must be >= 2")
    if args.max_source_positions is not None:
        try:   # checked before the model (and its position table) is built
            check_max_source_positions(args.max_source_positions)
        except ValueError as err:
            parser.error(str(err))
    if not os.path.isfile(args.checkpoint):
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    if not os.path.isdir(args.data):
        parser.error(f"--data {args.data}: no such folder")
    chosen = [flag for flag, value in (("--sentencepiece-model", args.sentencepiece_model),
                                       ("--gpt2-encoder-json", args.gpt2_encoder_json),
                                       ("--no-bpe", args.no_bpe)) if value]
    if len(chosen) > 1 and set(chosen) != {"--gpt2-encoder-json"}:
        parser.error(f"{' and '.join(chosen)} exclude each other: give one")
    if bool(args.gpt2_encoder_json) != bool(args.gpt2_vocab_bpe):
        parser.error("--gpt2-encoder-json and --gpt2-vocab-bpe go together")
    for flag, path in (("--sentencepiece-model", args.sentencepiece_model),
                       ("--gpt2-encoder-json", args.gpt2_encoder_json),
                       ("--gpt2-vocab-bpe", args.gpt2_vocab_bpe)):
        if path and not os.path.isfile(path):
            parser.error(f"{flag} {path}: no such file")


def _load_hub(args, **overrides):
    """The summarizer of --checkpoint / --data with the BPE the flags (or the data folder) name."""
    from deep_pyramidion.fairseq_plugin.hub import from_pretrained

    if args.max_source_positions is not None:
        overrides["max_source_positions"] = args.max_source_positions
    ckpt = os.path.abspath(args.checkpoint)
    bpe = None if args.no_bpe else "gpt2" if args.gpt2_encoder_json else \
        "sentencepiece" if args.sentencepiece_model else "auto"
    try:
        return from_pretrained(os.path.dirname(ckpt), checkpoint_file=os.path.basename(ckpt),
                               data_name_or_path=os.path.abspath(args.data), bpe=bpe,
                               sentencepiece_model=args.sentencepiece_model,
                               gpt2_encoder_json=args.gpt2_encoder_json,
                               gpt2_vocab_bpe=args.gpt2_vocab_bpe, **overrides)
    except FileNotFoundError as err:
        raise DataError(str(err)) from None


# ---------------------------------------------------------------------------------- summarize
SUMMARIZE_DOC = """One document per line in, one summary per line out.

    pyramidion-summarize --checkpoint runs/aclsum/checkpoint_best.pt --data data-bin/aclsum \\
        data/aclsum/test-A.src > hyps.txt
    tr '\\n' ' ' < paper.txt | pyramidion-summarize --checkpoint CKPT --data DATA_BIN -

Output line i is the summary of input line i: the counts always match. An empty (or
whitespace-only) input line, or one that is not UTF-8, is an error that names the line (and byte)
and nothing is generated, so a line is never dropped or silently replaced. The BPE is the data
folder's: spm.model (sentencepiece) or encoder.json + vocab.bpe (a pretrained BART's, written by
pyramidion-preprocess --pretrained). Summaries go to stdout; everything else (progress, truncation
of long documents, errors) goes to stderr. Sentences of a summary are joined with " <q> " (the
format of the data's .tgt files, which pyramidion-score reads); --sentence-separator " " gives
plain text.
"""


def read_documents(source, name: str) -> List[str]:
    """Every line of ``source`` (a path or a binary stream) by the project's line rule; an empty
    line or undecodable bytes raise DataError naming the line."""
    docs = []
    for lineno, text in iter_document_lines(source, name):
        if not text.strip():
            raise DataError(
                f"{name}:{lineno}: empty line; every line must hold one document (remove the line "
                "or put text on it: output line N is the summary of input line N)")
        docs.append(text)
    return docs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyramidion-summarize", description=SUMMARIZE_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=exit_codes_help())
    parser.add_argument("input", nargs="?", default="-", metavar="FILE|-",
                        help="documents, one per line (default -: stdin)")
    _add_model_args(parser)
    parser.add_argument("--beam", type=int, default=4, help="beam size (default 4)")
    parser.add_argument("--min-len", type=int, help="minimum summary length in tokens")
    parser.add_argument("--max-len-b", type=int,
                        help="maximum summary length in tokens (default: the checkpoint's, 200)")
    parser.add_argument("--lenpen", type=float, help="length penalty (default 1.0)")
    parser.add_argument("--no-repeat-ngram-size", type=int, help="block repeated n-grams of this size")
    parser.add_argument("--batch-size", type=int, default=8, help="documents per batch (default 8)")
    parser.add_argument("--sentence-separator", default=" <q> ",
                        help='joins the sentences of a summary (default " <q> ")')
    parser.add_argument("--cuda", action="store_true", help="run on the GPU")
    parser.add_argument("-v", "--verbose", action="store_true", help="log fairseq's messages too")
    return parser


def summarize_main(argv: Optional[List[str]] = None) -> int:
    return run_cli(_summarize, argv)


def _summarize(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag, value in (("--beam", args.beam), ("--batch-size", args.batch_size)):
        if value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    for flag, value in (("--max-len-b", args.max_len_b), ("--min-len", args.min_len),
                        ("--no-repeat-ngram-size", args.no_repeat_ngram_size)):
        if value is not None and value < 0:
            parser.error(f"{flag} must be >= 0, got {value}")
    if args.lenpen is not None and not (args.lenpen == args.lenpen and abs(args.lenpen) < 1e6):
        parser.error(f"--lenpen must be a finite number, got {args.lenpen}")
    _check_model_args(parser, args)
    _logging(args.verbose)   # loads fairseq: after every usage check

    # read (and check) every document before the model loads: a bad line fails fast
    name = "<stdin>" if args.input == "-" else args.input
    docs = read_documents(sys.stdin if args.input == "-" else args.input, name)
    if not docs:
        logger.warning("%s holds no documents: nothing to summarize", name)
        return EXIT_OK
    hub = _load_hub(args, batch_size=args.batch_size, cpu=not args.cuda)
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
            sys.stdout.write(" ".join(summary.split("\n")) + "\n")
        sys.stdout.flush()
        written += len(summaries)
        logger.info("%d / %d documents", written, len(docs))
    if written != len(docs):  # summarize() guarantees this; a last guard for the line contract
        raise DataError(f"wrote {written} summaries for {len(docs)} documents")
    return EXIT_OK


# ---------------------------------------------------------------------------------- highlight
HIGHLIGHT_DOC = """Show which input tokens the encoder's poolers kept: the paper's "highlighting".

    pyramidion-highlight --checkpoint runs/aclsum/checkpoint_best.pt --data data-bin/aclsum \\
        --input data/aclsum/test-A.src --line 1 --out highlight/
    pyramidion-highlight --checkpoint CKPT --data DATA_BIN --text "raw document text" --out DIR

(From a checkout, python scripts/highlight.py takes the same arguments.)

Writes OUT/highlight.html (the document with every token shaded by its weight, one section per
pooling layer, and the most-kept passages listed), OUT/highlight.png (a heat strip per pooling
layer over the token positions) and OUT/weights.json (the numbers). What a weight is:
deep_pyramidion/analysis/highlight.py. --line counts lines by the project's line rule (a line ends
at \\n), as pyramidion-preprocess and pyramidion-score do. OUT is built beside an existing OUT and
replaces it only when complete; an OUT holding other files, or that is a file, is refused.
"""
HIGHLIGHT_FILES = owned_by(names=("highlight.html", "highlight.png", "weights.json"))


def read_document(path: str, line: int) -> str:
    count = 0
    for count, text in iter_document_lines(path):
        if count == line:
            if not text.strip():
                raise DataError(f"{path}:{line}: empty line")
            return text
    raise DataError(f"--line {line}: {path} has only {count} lines")


def highlight_main(argv: Optional[List[str]] = None, prog: str = "pyramidion-highlight") -> int:
    """``pyramidion-highlight`` (``scripts/highlight.py`` passes its own ``prog``)."""
    return run_cli(lambda args: _highlight(args, prog), argv)


def _highlight(argv, prog: str = "pyramidion-highlight") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=HIGHLIGHT_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=exit_codes_help())
    _add_model_args(parser)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", metavar="FILE", help="documents, one per line (see --line)")
    src.add_argument("--text", help="the document itself")
    parser.add_argument("--line", type=int, default=1, help="which line of --input (1-based, default 1)")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    if args.line < 1:
        parser.error("--line must be >= 1")
    _check_model_args(parser, args)
    if args.input is not None and not os.path.isfile(args.input):
        parser.error(f"--input {args.input}: no such file")
    _logging()   # loads fairseq: after every usage check
    check_not_overlapping("--out", args.out, [("--checkpoint", args.checkpoint),
                                              ("--data", args.data), ("--input", args.input)])
    if os.path.lexists(args.out) and not os.path.isdir(args.out):
        raise DataError(f"--out {args.out}: exists and is not a folder")

    from deep_pyramidion.analysis.highlight import HighlightError, highlight

    if args.input is not None:
        text = read_document(args.input, args.line)
        name = f"{os.path.basename(args.input)}:{args.line}"
    else:
        text, name = args.text, "--text"
    hub = _load_hub(args, cpu=True)
    final = os.path.abspath(args.out)
    try:
        with StagedDir(final, HIGHLIGHT_FILES, "--out") as stage:
            result = highlight(hub, text, stage, name, final_dir=final)
    except HighlightError as err:
        raise DataError(str(err)) from None
    for info in result["layers"]:
        highlight_logger.info("layer %d: %d -> %d tokens, weights sum to %.2f", info["layer"],
                              info["n_in"], info["n_out"], info["weight_sum"])
    highlight_logger.info("wrote %s and %s", result["html"], result["png"])
    return EXIT_OK


# ---------------------------------------------------------------------------------- convert
CONVERT_DOC = """Convert a pretrained BART into a long-input pyramidion (LED's recipe).

    pyramidion-convert bart.base/ bart-8k/ --max-source-positions 8192
    pyramidion-convert hf-bart-large-cnn/ bart-large-16k/ --max-source-positions 16384 \\
        --arch pyramidion_bart_large

SRC_DIR is recognised by its files: a fairseq BART (model.pt + dict.txt, as fairseq distributes
bart.base / bart.large / bart.large.cnn) or a Hugging Face BART (config.json, model.safetensors or
pytorch_model.bin, vocab.json + merges.txt), read locally (nothing is downloaded). OUT_DIR gets
model.pt, dict.txt (+ dict.src.txt, dict.tgt.txt), the BPE files encoder.json + vocab.bpe and
convert.json (what was mapped, added and left out). It is written beside OUT_DIR and renamed into
place when complete; a non-empty OUT_DIR is replaced only with --force. Fine-tune with
fairseq-train --finetune-from-model OUT_DIR/model.pt; see the README's "Starting from a pretrained
BART".
"""


def convert_main(argv: Optional[List[str]] = None) -> int:
    return run_cli(_convert, argv)


def _convert(argv) -> int:
    parser = argparse.ArgumentParser(prog="pyramidion-convert", description=CONVERT_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=exit_codes_help(note="A failed conversion leaves OUT_DIR "
                                                            "as it was."))
    parser.add_argument("src_dir", metavar="SRC_DIR", help="the pretrained BART")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="where the pyramidion is written")
    # the model's own options: flag, type and help are the config's (config.py)
    PyramidionConfig.add_flag(parser, "max_source_positions", required=True,
                              note="at least the pretrained positions")
    parser.add_argument("--arch", choices=("pyramidion_bart_base", "pyramidion_bart_large"),
                        help="family defaults (default: by the source's encoder layers)")
    PyramidionConfig.add_flag(parser, "enc_layers_and_token_width",
                              note="here the schedule of the new poolers, which the "
                                   "fine-tuning command must name with the same layers (default: "
                                   "half-way 2x the pretrained positions, after the last layer "
                                   "the pretrained positions)")
    parser.add_argument("--encoder-json", metavar="PATH",
                        help="GPT-2 BPE vocabulary, for a fairseq source that does not hold one")
    parser.add_argument("--vocab-bpe", metavar="PATH", help="GPT-2 BPE merges, with --encoder-json")
    parser.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR")
    parser.add_argument("--seed", type=int, default=1, help="seed of the new poolers (default 1)")
    args = parser.parse_args(argv)
    if bool(args.encoder_json) != bool(args.vocab_bpe):
        parser.error("--encoder-json and --vocab-bpe go together")
    try:   # before anything is read or allocated
        check_max_source_positions(args.max_source_positions)
    except ValueError as err:
        parser.error(str(err))
    _logging(verbose=True)
    from deep_pyramidion.fairseq_plugin.convert import convert

    report = convert(args.src_dir, args.out_dir, args.max_source_positions, arch=args.arch,
                     force=args.force, encoder_json=args.encoder_json, vocab_bpe=args.vocab_bpe,
                     schedule=args.enc_layers_and_token_width, seed=args.seed)
    convert_logger.info("wrote %s (%s, %d source positions, schedule %s)", args.out_dir,
                        report["arch"], report["max_source_positions"],
                        report["enc_layers_and_token_width"])
    return EXIT_OK


EXPORT_HF_DOC = """Export a fairseq-trained pyramidion as a Hugging Face model folder.

    pyramidion-export-hf --checkpoint runs/aclsum/checkpoint_best.pt --data data-bin/aclsum hf-out/
    pyramidion-export-hf --checkpoint bart-8k/model.pt --data bart-8k hf-bart-8k/

The flags and the tokenizer discovery are pyramidion-summarize's: DATA_BIN holds the dictionary
(dict.src.txt) and the BPE (spm.model, or encoder.json + vocab.bpe). OUT_DIR gets config.json
(with auto_map), generation_config.json (the project's decoding defaults, --beam etc. override),
model.safetensors, the tokenizer files and the model's code, so that
AutoModelForSeq2SeqLM.from_pretrained(OUT_DIR, trust_remote_code=True) works where only torch and
transformers are installed. export.json lists every checkpoint tensor and what became of it.
OUT_DIR is written beside its place and renamed in when complete; an existing one is replaced only
with --force.
"""


def build_export_hf_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyramidion-export-hf", description=EXPORT_HF_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=exit_codes_help(note="A failed export leaves OUT_DIR "
                                                            "as it was."))
    parser.add_argument("out_dir", metavar="OUT_DIR", help="where the export is written")
    _add_model_args(parser)
    parser.add_argument("--force", action="store_true", help="replace an existing OUT_DIR")
    for flag, kind, what in (("--beam", int, "beam size"), ("--lenpen", float, "length penalty"),
                             ("--min-len", int, "minimum summary length"),
                             ("--max-len-b", int, "maximum summary length"),
                             ("--no-repeat-ngram-size", int, "block repeated n-grams")):
        parser.add_argument(flag, type=kind, help=f"{what} in generation_config.json (default: "
                                                  "configs/generate/paper.args, or bart.args for "
                                                  "BART-family models)")
    return parser


def export_hf_main(argv: Optional[List[str]] = None) -> int:
    return run_cli(_export_hf, argv)


def _export_hf(argv) -> int:
    parser = build_export_hf_parser()
    args = parser.parse_args(argv)
    _check_model_args(parser, args)
    if args.no_bpe:
        parser.error("--no-bpe: an export needs its tokenizer (spm.model or encoder.json + vocab.bpe)")
    for flag in ("beam", "min_len", "max_len_b", "no_repeat_ngram_size"):
        value = getattr(args, flag)
        if value is not None and value < (1 if flag == "beam" else 0):
            parser.error(f"--{flag.replace('_', '-')} must be >= {1 if flag == 'beam' else 0}")
    _logging(verbose=False)
    # the closing "wrote OUT_DIR" line (run_cli restores the level)
    logging.getLogger("pyramidion-export-hf").setLevel(logging.INFO)
    from deep_pyramidion.fairseq_plugin import export_hf

    return export_hf.run(args)
