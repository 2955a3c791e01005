import ast
import os

from setuptools import find_packages, setup


def console_scripts():
    """``name=module:function`` for every row of deep_pyramidion/commands.py, read as a literal
    (the package is not imported: its requirements may not be installed yet)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deep_pyramidion", "commands.py")
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["COMMANDS"]:
            return [f"{name}={target}" for name, (target, _summary) in ast.literal_eval(node.value).items()]
    raise RuntimeError(f"{path}: no COMMANDS table")


setup(
    name="deep_pyramidion",
    version="0.1.0",
    description="fairseq plugin: long-document summarization with trainable representation pooling",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",  # torch 2.13 has no wheels for 3.9; only 3.11 is tested
    packages=find_packages(include=["deep_pyramidion", "deep_pyramidion.*"]),
    install_requires=[
        "torch>=2.13,<2.16",  # tested with 2.13.0 (make test) and 2.15.0 (make test-newest)
        "numpy",
        "sentencepiece",
        "rouge-score",
        "regex",          # GPT-2 byte-level BPE of pretrained BARTs (data/gpt2_bpe.py)
        "safetensors",    # reading Hugging Face BART weights (pyramidion-convert)
        # fairseq 0.12.2 does not import on Python >= 3.11 (mutable dataclass defaults);
        # fairseq-fixed is fairseq main with those fixes and provides the same `fairseq` module.
        "fairseq==0.12.2; python_version < '3.11'",
        "fairseq-fixed==0.12.3.1; python_version >= '3.11'",
    ],
    extras_require={
        "cuda": ["triton"],
        "data": ["aclsum"],
        # transformers: the Hugging Face adapter (deep_pyramidion.hf, pyramidion-export-hf);
        # accelerate: transformers' Trainer / Seq2SeqTrainer
        "hf": ["datasets", "transformers>=5", "accelerate"],
        # triton for the kernels' CPU-interpreter tests (TRITON_INTERPRET=1); wheels exist for
        # Linux x86_64 only, elsewhere those tests skip
        # transformers: the Hugging Face BART the converter is tested against
        "test": ["pytest", "pytest-xdist", "hypothesis", "aclsum", "transformers", "accelerate",
                 'triton; platform_system == "Linux" and platform_machine == "x86_64"'],
        # benchmarks/ (python -m benchmarks): the Hugging Face LED peer and the plots
        "bench": ["transformers", "matplotlib"],
        "viz": ["matplotlib"],
    },
    # one console script per row of deep_pyramidion/commands.py (pyramidion-summarize,
    # pyramidion-convert, pyramidion-export-hf, pyramidion-score, ...)
    entry_points={"console_scripts": console_scripts()},
)
