"""Data side of deep_pyramidion: raw papers -> text splits -> binarized fairseq data.

Nothing here imports fairseq or torch: :mod:`deep_pyramidion.data.binarize` runs
``fairseq-preprocess`` in a subprocess and reads the binarized counts from the index headers.
Scoring the summaries is :mod:`deep_pyramidion.eval`.

Layout written by the ``scripts/prepare_*.py`` scripts (one document per line, UTF-8)::

    DIR/{train,dev-0,test-A}.src   source document (whitespace-normalised)
    DIR/{train,dev-0,test-A}.tgt   reference summary, sentences joined by `` <q> ``
    DIR/{train,dev-0,test-A}.ids   one document id per line, same order

Modules:
    io            the one rule for a document line (files and stdin), UTF-8 errors with line and
                  byte offset, JSON lines
    sentences     the sentence marker and the sentence-splitting rule
    splits        the split writer shared by the prepare steps, skip accounting, record shapes
    output        outputs built beside the old ones and swapped in on success; input/output overlap
    aclsum        the ACLSum papers shipped by the ``aclsum`` package
    arxiv_pubmed  the arXiv / PubMed release of Cohan et al. (2018)
    binarize      sentencepiece + fairseq-preprocess, dictionary / model consistency check
    cli, cli_common  the command lines of the prepare and preprocess scripts, exit codes
"""

SPLITS = ("train", "dev-0", "test-A")
