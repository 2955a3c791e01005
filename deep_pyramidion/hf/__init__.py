"""The Hugging Face adapter: a pyramidion as a transformers model, on the torch-only core.

    configuration_pyramidion.py   PyramidionHFConfig (model_type "pyramidion")
    modeling_pyramidion.py        PyramidionForConditionalGeneration (generate(), the Trainer)
    tokenization_pyramidion.py    PyramidionTokenizer (fairseq's dictionary + sentencepiece / GPT-2 BPE)
    pipeline_pyramidion.py        PyramidionSummarizationPipeline (pipeline("summarization"))
    export.py                     writing a self-contained folder (code copied in, safetensors)

Importing this package registers the config, the model and the tokenizer with transformers' Auto
classes, so an installed deep_pyramidion loads an export without ``trust_remote_code``, and the
pipeline with ``PIPELINE_REGISTRY`` under "summarization" (a pipeline built from it and saved
records itself in ``custom_pipelines``). transformers 5 (5.24, 5.25) still refuses
``pipeline("summarization", ...)`` unless the folder's config names a pipeline for the task
(``custom_pipelines``, which asks for ``trust_remote_code``) or the class is passed: with the
package installed, ``pipeline("summarization", model=OUT_DIR,
pipeline_class=PyramidionSummarizationPipeline)`` runs no remote code.

Neither fairseq nor the fairseq adapter is imported here
(tests/integration/test_import_boundaries.py checks it).
"""
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer
from transformers.pipelines import PIPELINE_REGISTRY

from deep_pyramidion.hf.configuration_pyramidion import PyramidionHFConfig
from deep_pyramidion.hf.modeling_pyramidion import PyramidionForConditionalGeneration
from deep_pyramidion.hf.pipeline_pyramidion import (
    TASK, PyramidionSummarizationPipeline,
)
from deep_pyramidion.hf.tokenization_pyramidion import PyramidionTokenizer


def _register() -> None:
    # exist_ok: importing the package twice (e.g. under two names) is not an error
    AutoConfig.register(PyramidionHFConfig.model_type, PyramidionHFConfig, exist_ok=True)
    AutoModelForSeq2SeqLM.register(PyramidionHFConfig, PyramidionForConditionalGeneration,
                                   exist_ok=True)
    AutoTokenizer.register(PyramidionHFConfig, slow_tokenizer_class=PyramidionTokenizer,
                           exist_ok=True)
    # registered once: transformers warns when a task is registered again
    current = PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl")
    if current is not PyramidionSummarizationPipeline:
        PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=PyramidionSummarizationPipeline,
                                            pt_model=AutoModelForSeq2SeqLM, type="text")


_register()

__all__ = ["PyramidionForConditionalGeneration", "PyramidionHFConfig",
           "PyramidionSummarizationPipeline", "PyramidionTokenizer"]
