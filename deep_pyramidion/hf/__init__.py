"""The Hugging Face adapter: a pyramidion as a transformers model, on the torch-only core.

    configuration_pyramidion.py   PyramidionHFConfig (model_type "pyramidion")
    modeling_pyramidion.py        PyramidionForConditionalGeneration (generate(), the Trainer)
    tokenization_pyramidion.py    PyramidionTokenizer (fairseq's dictionary + sentencepiece / GPT-2 BPE)
    export.py                     writing a self-contained folder (code copied in, safetensors)

Importing this package registers the three with transformers' Auto classes, so an installed
deep_pyramidion loads an export without ``trust_remote_code``. Neither fairseq nor the fairseq
adapter is imported here (tests/integration/test_import_boundaries.py checks it).
"""
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

from deep_pyramidion.hf.configuration_pyramidion import PyramidionHFConfig
from deep_pyramidion.hf.modeling_pyramidion import PyramidionForConditionalGeneration
from deep_pyramidion.hf.tokenization_pyramidion import PyramidionTokenizer


def _register() -> None:
    # exist_ok: importing the package twice (e.g. under two names) is not an error
    AutoConfig.register(PyramidionHFConfig.model_type, PyramidionHFConfig, exist_ok=True)
    AutoModelForSeq2SeqLM.register(PyramidionHFConfig, PyramidionForConditionalGeneration,
                                   exist_ok=True)
    AutoTokenizer.register(PyramidionHFConfig, slow_tokenizer_class=PyramidionTokenizer,
                           exist_ok=True)


_register()

__all__ = ["PyramidionForConditionalGeneration", "PyramidionHFConfig", "PyramidionTokenizer"]
