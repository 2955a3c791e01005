"""The summarization pipeline of a pyramidion: ``pipeline("summarization", model=OUT_DIR,
trust_remote_code=True)``.

transformers 5 removed its own ``summarization`` pipeline (and ``text2text-generation``); a folder
can still bring one as remote code: the export's config.json names this class under
``custom_pipelines`` and the exporter copies this file beside the model's. With deep_pyramidion
installed, ``import deep_pyramidion.hf`` registers it with transformers' ``PIPELINE_REGISTRY`` too.

    summarizer = pipeline("summarization", model="hf-aclsum", trust_remote_code=True)
    summarizer("full text of a paper ...")            # [{"summary_text": "..."}]
    summarizer(["paper one ...", "paper two ..."], num_beams=2, sentence_separator=" ")

What it does is ``pyramidion-summarize``'s, step by step:

    preprocess   the tokenizer (fairseq's ids, </s> appended); a document longer than the model's
                 ``max_source_positions`` keeps its first tokens and </s>, as fairseq's
                 --truncate-source and pyramidion-summarize do (logged)
    _forward     model.generate() with the export's generation_config.json (the project's decoding
                 defaults); keyword arguments of the call (num_beams, max_new_tokens, ...) override
    postprocess  {"summary_text": the tokenizer's decode}: fairseq's detokenization, the sentence
                 marker <q> replaced by ``sentence_separator`` (default " <q> ", as
                 pyramidion-summarize prints; " " gives plain text), one line

A list of documents gives one result per document; ``batch_size=N`` pads on the left, as
fairseq-generate's batches do (the default, one document per batch, gives every document the
encoding it has alone).
"""
import logging
from typing import Any, Dict, List, Optional

import torch
from transformers import Pipeline

logger = logging.getLogger(__name__)

TASK = "summarization"


class PyramidionSummarizationPipeline(Pipeline):
    """Summaries of long documents with a pyramidion (see the module's docstring)."""

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False
    # generate()'s arguments are collected here (_sanitize_parameters), not by the base class: its
    # handling of them changes between transformers releases, and the export's generation config
    # is the default either way
    _pipeline_calls_generate = False

    def _sanitize_parameters(self, truncation: Optional[bool] = None,
                             sentence_separator: Optional[str] = None,
                             return_text: Optional[bool] = None,
                             return_tensors: Optional[bool] = None,
                             generate_kwargs: Optional[Dict[str, Any]] = None, **generate):
        preprocess = {} if truncation is None else {"truncation": truncation}
        forward = dict(generate_kwargs or {})
        forward.update(generate)
        postprocess = {}
        if sentence_separator is not None:
            postprocess["sentence_separator"] = sentence_separator
        if return_text is not None:
            postprocess["return_text"] = return_text
        if return_tensors is not None:
            postprocess["return_tensors"] = return_tensors
        return preprocess, forward, postprocess

    def __call__(self, documents, **kwargs):
        """One list of records per document ({"summary_text": str}, one per returned sequence);
        a list of documents with one sequence each gives one record per document, as
        transformers 4's SummarizationPipeline did."""
        result = super().__call__(documents, **kwargs)
        if isinstance(documents, (list, tuple)) and all(len(r) == 1 for r in result):
            return [r[0] for r in result]
        return result

    @property
    def max_source_tokens(self) -> int:
        """Most source tokens (</s> included) the model reads per document."""
        return int(self.model.config.max_source_positions)

    def preprocess(self, document: str, truncation: bool = True) -> Dict[str, torch.Tensor]:
        if not isinstance(document, str):
            raise TypeError(f"a document must be a str, got {type(document).__name__}")
        if not document.strip():
            raise ValueError("the document is empty: there is nothing to summarize")
        ids: List[int] = self.tokenizer(document)["input_ids"]
        limit = self.max_source_tokens
        if len(ids) > limit:
            if not truncation:
                raise ValueError(f"the document has {len(ids)} tokens, more than the model's "
                                 f"max_source_positions ({limit}); pass truncation=True")
            logger.warning("document of %d source tokens truncated to the model's max source "
                           "positions (%d)", len(ids), limit)
            ids = ids[: limit - 1] + ids[-1:]
        input_ids = torch.tensor([ids], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}

    def _forward(self, model_inputs: Dict[str, torch.Tensor], **generate) -> Dict[str, Any]:
        documents = model_inputs["input_ids"].size(0)
        output_ids = self.model.generate(**model_inputs, **generate)
        # (documents * sequences, length) -> (documents, sequences, length); the pipeline then
        # hands postprocess one document at a time
        output_ids = output_ids.reshape(documents, -1, output_ids.size(-1))
        return {"output_ids": output_ids}

    def postprocess(self, model_outputs: Dict[str, Any], sentence_separator: Optional[str] = None,
                    return_text: bool = True, return_tensors: bool = False) -> List[dict]:
        records = []
        for ids in model_outputs["output_ids"][0]:
            record = {}
            if return_tensors:
                record["summary_token_ids"] = ids
            if return_text:
                record["summary_text"] = self.tokenizer.decode(
                    ids, sentence_separator=sentence_separator)
            records.append(record)
        return records


__all__ = ["PyramidionSummarizationPipeline", "TASK"]
