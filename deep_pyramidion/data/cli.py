"""The command lines of the data package: ``pyramidion-prepare`` (``aclsum`` and ``arxiv-pubmed``,
also ``scripts/prepare_aclsum.py`` and ``scripts/prepare_arxiv_pubmed.py``) and
``pyramidion-preprocess`` (also ``scripts/preprocess.py``); deep_pyramidion/commands.py lists them.
Every expected failure ends with one ``error: ...`` line and the exit codes of
:mod:`deep_pyramidion.plumbing.cli`; every output folder is replaced only when the run succeeded
(:mod:`deep_pyramidion.plumbing.files`)."""

import argparse
import logging
import os
import re
from typing import List, Optional

from deep_pyramidion.plumbing.cli import EXIT_OK, exit_codes_help, run_cli, setup_logging
from deep_pyramidion.plumbing.errors import DataError

logger = logging.getLogger(__name__)

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_VOCAB = 1_000_000
_FOLDER_NOTE = (" OUT is built beside the old folder and replaces it only when the run succeeded; a folder "
                "holding files this command did not write, or holding an input, is refused.")


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# --------------------------------------------------------------------------- prepare_aclsum

PREPARE_ACLSUM_DOC = """Write the ACLSum papers shipped by the `aclsum` package as train / dev-0 / test-A text splits.

    pyramidion-prepare aclsum --out data/aclsum [--max-source-words N] [--strict]

(From a checkout, python scripts/prepare_aclsum.py takes the same flags.)

Writes {split}.src (paper body), {split}.tgt (abstract, sentences joined by " <q> "), {split}.ids,
prepare.json and, when documents were skipped, skipped.tsv. No network access. A paper that cannot
be used (no file, not JSON, a field of the wrong type, no body, no abstract, listed twice) is
skipped with a warning naming it and counted; --strict makes it an error.
"""


def prepare_aclsum_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/prepare_aclsum.py`` (``pyramidion-prepare aclsum``); returns the exit status."""
    return run_cli(_prepare_aclsum_main, argv)


def _prepare_aclsum_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="prepare_aclsum.py", **_prepare_aclsum_help())
    _add_prepare_aclsum_args(parser)
    return _run_prepare_aclsum(parser, parser.parse_args(argv))


def _prepare_aclsum_help() -> dict:
    return dict(description=PREPARE_ACLSUM_DOC, formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=exit_codes_help(note=_FOLDER_NOTE))


def _add_prepare_aclsum_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--data-dir", help="aclsum dataset folder (default: the installed package's)")
    parser.add_argument("--max-source-words", type=int, default=None,
                        help="cut each body to its first N words (default: keep all; the model truncates)")
    parser.add_argument("--strict", action="store_true", help="fail on the first bad document instead of skipping it")


def _run_prepare_aclsum(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .aclsum import aclsum_data_dir, prepare_aclsum

    if args.max_source_words is not None and args.max_source_words <= 0:
        parser.error("--max-source-words must be a positive integer")
    setup_logging()
    data_dir = args.data_dir or aclsum_data_dir()
    if not os.path.isdir(data_dir):
        raise DataError(f"--data-dir {data_dir}: no such folder")
    result = prepare_aclsum(args.out, data_dir, args.max_source_words, args.strict, source=f"aclsum ({data_dir})")
    print(result.summary())
    return EXIT_OK


# --------------------------------------------------------------------------- prepare_arxiv_pubmed

PREPARE_ARXIV_DOC = """Convert the arXiv / PubMed summarization sets (Cohan et al., 2018) to train / dev-0 / test-A.

From the original release (a folder with train.txt, val.txt, test.txt, or those files):
    pyramidion-prepare arxiv-pubmed --input arxiv-dataset --out data/arxiv
From the Hugging Face copy (needs `pip install datasets` and network access):
    pyramidion-prepare arxiv-pubmed --hf scientific_papers --config arxiv --out data/arxiv

(From a checkout, python scripts/prepare_arxiv_pubmed.py takes the same flags.)

Writes {split}.src (article), {split}.tgt (abstract sentences joined by " <q> "), {split}.ids,
prepare.json and, when documents were skipped, skipped.tsv. A record that cannot be used (not an
object, a field of the wrong type, no article, no abstract, a duplicate id) is skipped with a
warning naming it and counted; --strict makes it an error. A line that is not JSON is an error.
"""


def prepare_arxiv_pubmed_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/prepare_arxiv_pubmed.py`` (``pyramidion-prepare arxiv-pubmed``); returns the exit
    status."""
    return run_cli(_prepare_arxiv_pubmed_main, argv)


def _prepare_arxiv_pubmed_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="prepare_arxiv_pubmed.py", **_prepare_arxiv_help())
    _add_prepare_arxiv_args(parser)
    return _run_prepare_arxiv_pubmed(parser, parser.parse_args(argv))


def _prepare_arxiv_help() -> dict:
    return dict(description=PREPARE_ARXIV_DOC, formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=exit_codes_help(note=_FOLDER_NOTE))


def _add_prepare_arxiv_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", metavar="DIR_OR_FILES",
                        help="folder with train/val/test .txt|.jsonl, or the split files themselves")
    source.add_argument("--hf", metavar="NAME", help="Hugging Face dataset name, e.g. scientific_papers")
    parser.add_argument("--config", help="Hugging Face config (arxiv or pubmed); with --hf")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--splits", default="train,val,test",
                        help="comma-separated original splits to convert (default: train,val,test)")
    parser.add_argument("--max-source-words", type=int, default=None,
                        help="cut each article to its first N words (default: keep all)")
    parser.add_argument("--strict", action="store_true", help="fail on the first bad document instead of skipping it")


def _run_prepare_arxiv_pubmed(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .arxiv_pubmed import SPLIT_NAMES, prepare_arxiv_pubmed, prepare_hf

    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    unknown = [s for s in splits if s not in SPLIT_NAMES]
    if unknown or not splits:
        parser.error(f"--splits: unknown split(s) {unknown}; choose from {', '.join(SPLIT_NAMES)}")
    if len(set(splits)) != len(splits):
        parser.error("--splits: give distinct split names")
    if args.max_source_words is not None and args.max_source_words <= 0:
        parser.error("--max-source-words must be a positive integer")
    if args.hf and not args.config:
        parser.error("--hf needs --config (arxiv or pubmed)")
    setup_logging()
    if args.hf:
        result = prepare_hf(args.hf, args.config, args.out, args.max_source_words, args.strict, splits)
    else:
        result = prepare_arxiv_pubmed(args.input, args.out, args.max_source_words, args.strict, splits)
    print(result.summary())
    return EXIT_OK


# --------------------------------------------------------------------------- pyramidion-prepare

PREPARE_DOC = """Write a summarization data set as text splits train / dev-0 / test-A, one document per line.

    pyramidion-prepare aclsum --out data/aclsum
    pyramidion-prepare arxiv-pubmed --input arxiv-dataset --out data/arxiv
    pyramidion-prepare arxiv-pubmed --hf scientific_papers --config pubmed --out data/pubmed

SOURCE aclsum: the ACLSum papers shipped by the `aclsum` package (pip install -e '.[data]');
SOURCE arxiv-pubmed: the arXiv / PubMed sets of Cohan et al. (2018), from the original release or
the Hugging Face copy. `pyramidion-prepare SOURCE --help` lists the flags of each, which are those
of scripts/prepare_aclsum.py and scripts/prepare_arxiv_pubmed.py. Next step:
pyramidion-preprocess --data data/aclsum --out data-bin/aclsum.
"""

#: SOURCE -> (one-line help, help settings, add the flags, run)
_PREPARE_SOURCES = {
    "aclsum": ("the ACLSum papers of the aclsum package", _prepare_aclsum_help, _add_prepare_aclsum_args,
               _run_prepare_aclsum),
    "arxiv-pubmed": ("arXiv / PubMed (Cohan et al., 2018): the original release or Hugging Face's copy",
                     _prepare_arxiv_help, _add_prepare_arxiv_args, _run_prepare_arxiv_pubmed),
}


def prepare_main(argv: Optional[List[str]] = None, prog: str = "pyramidion-prepare") -> int:
    """``pyramidion-prepare SOURCE ...``: the prepare command of each source under one name;
    returns the exit status."""
    return run_cli(lambda args: _prepare_main(args, prog), argv)


def _prepare_main(argv, prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=PREPARE_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=exit_codes_help(note=_FOLDER_NOTE))
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True,
                                    title="sources (pyramidion-prepare SOURCE --help for its flags)")
    for name, (summary, help_settings, add_args, run) in _PREPARE_SOURCES.items():
        sub = sources.add_parser(name, help=summary, **help_settings())
        add_args(sub)
        sub.set_defaults(_parser=sub, _run=run)
    args = parser.parse_args(argv)
    return args._run(args._parser, args)


# --------------------------------------------------------------------------- preprocess

PREPROCESS_DOC = """Sentencepiece + fairseq-preprocess: text splits -> binarized data named train / dev-0 / test-A.

    pyramidion-preprocess --data data/aclsum --out data-bin/aclsum --vocab-size 32000
    pyramidion-preprocess --data data/arxiv --out data-bin/arxiv --spm-model spm.model --workers 8
    pyramidion-preprocess --check data-bin/aclsum [--spm-model other.model]
    pyramidion-preprocess --data data/arxiv --out data-bin/arxiv-bart --pretrained bart-8k/

(From a checkout, python scripts/preprocess.py takes the same flags.)

DATA holds {split}.src / {split}.tgt (one document per line, as pyramidion-prepare writes them).
OUT gets {split}.src-tgt.{src,tgt}.{bin,idx}, dict.src.txt = dict.tgt.txt, spm.model (pass it as
--sentencepiece-model), {split}.ids and preprocess.json. With --pretrained DIR (pyramidion-convert's
OUT_DIR) the text is encoded with that model's byte-level BPE and binarized with its dict.txt, so the
token ids are the pretrained model's; OUT then holds encoder.json + vocab.bpe instead of spm.model
(fairseq-generate --bpe gpt2 --gpt2-encoder-json OUT/encoder.json --gpt2-vocab-bpe OUT/vocab.bpe).
--check only verifies that a sentencepiece model matches a folder's dictionary.
"""


def preprocess_main(argv: Optional[List[str]] = None, prog: str = "pyramidion-preprocess") -> int:
    """``pyramidion-preprocess`` (``scripts/preprocess.py`` passes its own ``prog``); returns the
    exit status."""
    return run_cli(lambda args: _preprocess_main(args, prog), argv)


def _preprocess_main(argv, prog: str = "pyramidion-preprocess") -> int:
    from .binarize import SPLITS, check_spm_dictionary, preprocess

    parser = argparse.ArgumentParser(
        prog=prog, description=PREPROCESS_DOC, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=exit_codes_help(note=_FOLDER_NOTE + " Reusing OUT/spm.model (--spm-model) with --overwrite is "
                               "safe: the old folder, model included, stays until the new one is complete."))
    parser.add_argument("--data", help="folder with the text splits")
    parser.add_argument("--out", help="output folder for the binarized data")
    parser.add_argument("--vocab-size", type=int, default=32000,
                        help="sentencepiece vocabulary size (default 32000, as in the paper); a corpus too "
                             "small for it gets a smaller model and a warning")
    parser.add_argument("--spm-model", help="reuse this sentencepiece model instead of training one")
    parser.add_argument("--pretrained", metavar="DIR",
                        help="binarize with a pretrained model's byte-level BPE and dictionary instead "
                             "of sentencepiece: the folder pyramidion-convert wrote (dict.txt, "
                             "encoder.json, vocab.bpe); they are copied into OUT")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for encoding and fairseq-preprocess (at most the CPUs are used)")
    parser.add_argument("--splits", default=",".join(SPLITS),
                        help=f"comma-separated splits to binarize (default {','.join(SPLITS)})")
    parser.add_argument("--model-type", default="unigram", choices=["unigram", "bpe"],
                        help="sentencepiece model type (default unigram)")
    parser.add_argument("--character-coverage", type=float, default=0.9995)
    parser.add_argument("--spm-input-sentences", type=int, default=2_000_000,
                        help="chunks of up to 100 words sampled to train sentencepiece (default 2000000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of sentencepiece's sampling")
    parser.add_argument("--keep-pieces", action="store_true", help="keep the encoded text in OUT/.pieces")
    parser.add_argument("--overwrite", action="store_true", help="replace preprocessed data already in OUT")
    parser.add_argument("--check", metavar="BIN_DIR",
                        help="only check that BIN_DIR/dict.src.txt matches --spm-model (default BIN_DIR/spm.model)")
    args = parser.parse_args(argv)
    setup_logging()

    if args.check:
        model = args.spm_model or os.path.join(args.check, "spm.model")
        report = check_spm_dictionary(model, os.path.join(args.check, "dict.src.txt"))
        print(f"ok: {model} matches {report.dict_path} ({report.n_pieces} pieces, "
              f"{len(report.missing)} not in the dictionary, {len(report.unknown)} entries not in the model)")
        return EXIT_OK

    if not args.data or not args.out:
        parser.error("--data and --out are required (or use --check BIN_DIR)")
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    if not splits or len(set(splits)) != len(splits):
        parser.error("--splits: give distinct split names")
    bad = [s for s in splits if not _SPLIT_NAME.match(s)]
    if bad:
        parser.error(f"--splits: {bad[0]!r} is not a split name (letters, digits, '.', '_', '-')")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.pretrained and args.spm_model:
        parser.error("--pretrained and --spm-model exclude each other")
    if args.spm_model is None and not 8 <= args.vocab_size <= MAX_VOCAB:
        parser.error(f"--vocab-size must be between 8 and {MAX_VOCAB}")
    if not 0.0 < args.character_coverage <= 1.0:
        parser.error("--character-coverage must be in (0, 1]")
    if not 0 <= args.spm_input_sentences < 2**31:
        parser.error("--spm-input-sentences must be between 0 and 2^31-1")
    if not 0 <= args.seed < 2**32:
        parser.error("--seed must be between 0 and 2^32-1")
    if not os.path.isdir(args.data):
        raise DataError(f"--data {args.data}: no such folder")
    workers = min(args.workers, _cpus())
    if workers < args.workers:
        logger.info("using %d worker processes, not %d (the CPUs available)", workers, args.workers)
    result = preprocess(
        args.data,
        args.out,
        vocab_size=args.vocab_size,
        spm_model=args.spm_model,
        workers=workers,
        splits=splits,
        model_type=args.model_type,
        character_coverage=args.character_coverage,
        input_sentence_size=args.spm_input_sentences,
        keep_pieces=args.keep_pieces,
        overwrite=args.overwrite,
        seed=args.seed,
        pretrained=args.pretrained,
    )
    counts = ", ".join(f"{split} {n}" for split, n in result.counts.items())
    tokenizer = f"sentencepiece model {result.spm_model}" if result.spm_model else \
        f"byte-level BPE {os.path.join(result.out_dir, 'encoder.json')} + vocab.bpe"
    print(f"wrote {result.out_dir}: {counts} documents; dictionary {result.dict_size} entries "
          f"({result.dictionary}); {tokenizer}")
    return EXIT_OK
