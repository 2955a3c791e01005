"""Evaluation of summaries: ROUGE with bootstrap intervals, the Lead baseline, fairseq-generate
outputs. Plain Python (numpy, rouge-score, the project's sentence splitter): neither torch nor
fairseq is imported, so scoring runs anywhere the text files are.

Modules:
    rouge            ROUGE-1/2/L/Lsum F1 per document and per system, bootstrap, the table
    lead             the Lead baseline (first sentences, cut to the median reference length)
    generate_output  reading fairseq-generate outputs and refusing ones that are not whole
                     (``pyramidion-check-output FILE``)
    evaluate         files -> :class:`~deep_pyramidion.eval.evaluate.Report` (what
                     pyramidion-score prints)
    cli              the command lines: ``pyramidion-score`` (``scripts/score.py``) and
                     ``pyramidion-check-output``
"""
