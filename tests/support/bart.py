"""The tiny pretrained BARTs of the tests: made by deep_pyramidion/testing/tiny_bart.py (which
benchmarks/pooler_init.py uses too, so it lives in the package), offered here under the names the
tests import; and text splits for fine-tuning them."""
from deep_pyramidion.testing.tiny_bart import (  # noqa: F401  (re-exported for the tests)
    LONG, SIZES, corpus, make_fairseq_bart, make_hf_bart)


def write_splits(folder, seed=3):
    """Text splits as the prepare scripts write them ({train,dev-0,test-A}.{src,tgt,ids}): documents
    longer than the pretrained length (up to 4x), the summary is their first words (two sentences
    joined by the <q> marker); returns {split: documents}."""
    folder.mkdir()
    sizes = {"train": 40, "dev-0": 6, "test-A": 5}
    for split, n in sizes.items():
        docs = corpus(n, seed=seed + len(split), min_words=40, max_words=140)
        summaries = [" ".join(d.split()[:8]) + " <q> " + " ".join(d.split()[8:14]) for d in docs]
        (folder / f"{split}.src").write_text("".join(d + "\n" for d in docs))
        (folder / f"{split}.tgt").write_text("".join(t + "\n" for t in summaries))
        (folder / f"{split}.ids").write_text("".join(f"{split}-{i}\n" for i in range(n)))
    return sizes
