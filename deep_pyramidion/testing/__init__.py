"""Helpers for testing and measuring the package, shipped with it (as torch.testing is): what the
test suite and the benchmarks both need, so that neither imports the other's files.

    tiny_bart   tiny pretrained BARTs (fairseq and Hugging Face layouts) made on the spot, to
                convert and fine-tune without downloading a model
"""
