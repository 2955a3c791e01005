"""Data side of deep_pyramidion: raw papers -> text splits -> binarized fairseq data -> ROUGE.

The modules here import only what they need (no fairseq, no torch), except
:mod:`deep_pyramidion.data.binarize`, which runs ``fairseq-preprocess`` in a subprocess.

Layout written by the ``scripts/prepare_*.py`` scripts (one document per line, UTF-8)::

    DIR/{train,dev-0,test-A}.src   source document (whitespace-normalised)
    DIR/{train,dev-0,test-A}.tgt   reference summary, sentences joined by `` <q> ``
    DIR/{train,dev-0,test-A}.ids   one document id per line, same order

Modules:
    io         line reading with file:line errors, whitespace normalisation, skip accounting
    sentences  the sentence marker and the sentence-splitting rule
    aclsum     the ACLSum papers shipped by the ``aclsum`` package
    arxiv_pubmed  the arXiv / PubMed release of Cohan et al. (2018)
    binarize   sentencepiece + fairseq-preprocess, dictionary / model consistency check
    rouge      ROUGE-1/2/L/Lsum, bootstrap intervals, fairseq-generate parsing, Lead baseline
"""

SPLITS = ("train", "dev-0", "test-A")
