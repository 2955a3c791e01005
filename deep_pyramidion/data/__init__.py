"""Data side of deep_pyramidion: raw papers -> text splits -> binarized fairseq data.

Nothing here imports fairseq or torch: :mod:`deep_pyramidion.data.fairseq_binary` runs
``fairseq-preprocess`` in a subprocess and reads the binarized counts from the index headers.
Scoring the summaries is :mod:`deep_pyramidion.eval`.

Layout written by the ``scripts/prepare_*.py`` scripts (one document per line, UTF-8)::

    DIR/{train,dev-0,test-A}.src   source document (whitespace-normalised)
    DIR/{train,dev-0,test-A}.tgt   reference summary, sentences joined by `` <q> ``
    DIR/{train,dev-0,test-A}.ids   one document id per line, same order

Modules:
    sentences     the sentence marker and the sentence-splitting rule
    splits        the split writer shared by the prepare steps, skip accounting, record shapes
    aclsum        the ACLSum papers shipped by the ``aclsum`` package
    arxiv_pubmed  the arXiv / PubMed release of Cohan et al. (2018)
    binarize      the preprocessing pipeline: text splits -> tokens -> binarized data, given a tokenizer
    tokenizers    the tokenizers it takes (sentencepiece, a pretrained BART's byte-level BPE) and
                  the sentencepiece model / dictionary consistency check
    gpt2_bpe      GPT-2's byte-level BPE (a pretrained BART's vocabulary and merges)
    fairseq_dictionary  fairseq dictionary files: the one reader, the writer with padding
    fairseq_binary      fairseq-preprocess as a subprocess, the ``.idx`` header reader
    cli           the command lines of the prepare and preprocess scripts

Reading the inputs, writing the outputs and the command-line harness are the floor's
(:mod:`deep_pyramidion.plumbing`: lines, files, cli, errors); ``io``, ``output`` and
``cli_common`` here only offer those names under their earlier import paths.
"""

SPLITS = ("train", "dev-0", "test-A")
