"""The pyramidion's tokenizer: the ids fairseq's pipeline gives, and the text pyramidion-summarize
prints.

    text -> whitespace collapsed (a document is one line of the training data)
         -> BPE pieces: sentencepiece (from-scratch models, spm.model), or the byte-level BPE of a
            pretrained BART (encoder.json + vocab.bpe), whose pieces are its ids as decimal strings
         -> fairseq's dictionary (its order, its special symbols; unknown pieces -> <unk>)
         -> + </s> (no <s>: fairseq's translation task appends only the end of sentence)

Decoding is fairseq's: the dictionary's symbols without <s>, <pad>, </s>, joined, the BPE undone,
and the sentence marker ``<q>`` (one sentencepiece symbol in the project's targets) replaced by
``sentence_separator`` with the spaces around it, as ``pyramidion-summarize`` does (its default
``" <q> "`` keeps the marker; ``" "`` gives plain text).

The dictionary is stored as ``fairseq_dict.json``, the list of symbols in index order exactly as
fairseq's Dictionary holds them (the exporter writes it from the loaded Dictionary), so nothing of
the dict.txt format is parsed twice.
"""
import json
import logging
import os
import re
from typing import Dict, List, Optional, Tuple

from transformers import PreTrainedTokenizer

try:  # only from-scratch (sentencepiece) models need it, as PEGASUS's or T5's tokenizers do
    import sentencepiece
except ImportError:  # pragma: no cover
    sentencepiece = None

from deep_pyramidion.data.gpt2_bpe import Gpt2Bpe

logger = logging.getLogger(__name__)

MARKER = "<q>"
_MARKER_RE = re.compile(r"\s*" + re.escape(MARKER) + r"\s*")
_SPACE_NORMALIZER = re.compile(r"\s+")     # fairseq's tokenize_line
SPM_PIECE_SPACE = "\u2581"
_FILLER = re.compile(r"madeupword\d+")

VOCAB_FILES_NAMES = {"dict_file": "fairseq_dict.json", "sentencepiece_model": "spm.model",
                     "gpt2_encoder_json": "encoder.json", "gpt2_vocab_bpe": "vocab.bpe"}


class PyramidionTokenizer(PreTrainedTokenizer):
    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, dict_file: str, sentencepiece_model: Optional[str] = None,
                 gpt2_encoder_json: Optional[str] = None, gpt2_vocab_bpe: Optional[str] = None,
                 sentence_separator: str = " <q> ", **kwargs):
        with open(dict_file, encoding="utf-8") as handle:
            self.symbols: List[str] = json.load(handle)
        # later symbols win, as in fairseq's Dictionary (a "#fairseq:overwrite" entry)
        self.indices: Dict[str, int] = {s: i for i, s in enumerate(self.symbols)}
        self.dict_file = dict_file
        self.sentence_separator = sentence_separator
        self.sentencepiece_model, self.gpt2_encoder_json, self.gpt2_vocab_bpe = \
            sentencepiece_model, gpt2_encoder_json, gpt2_vocab_bpe
        if gpt2_encoder_json and gpt2_vocab_bpe:
            self.bpe_kind = "gpt2"
            self.gpt2 = Gpt2Bpe(gpt2_encoder_json, gpt2_vocab_bpe)
        elif sentencepiece_model:
            if sentencepiece is None:
                raise ImportError("this tokenizer needs the sentencepiece package "
                                  "(pip install sentencepiece)")
            self.bpe_kind = "sentencepiece"
            self.sp = sentencepiece.SentencePieceProcessor(model_file=sentencepiece_model)
        else:
            raise ValueError("a pyramidion tokenizer needs spm.model, or encoder.json + vocab.bpe")
        for name, index in (("bos_token", 0), ("pad_token", 1), ("eos_token", 2),
                            ("unk_token", 3)):
            kwargs.setdefault(name, self.symbols[index])
        # text is never split at special-token strings: fairseq's BPE reads "<pad>" in a document
        # as text too
        kwargs.setdefault("split_special_tokens", True)
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        # fairseq's translation task pads sources on the left; blockwise chunks start at the
        # batch row's first position, so the padding side is part of what the encoder computes
        kwargs.setdefault("padding_side", "left")
        super().__init__(sentence_separator=sentence_separator, **kwargs)

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def get_vocab(self) -> Dict[str, int]:
        return dict(self.indices)

    def _convert_token_to_id(self, token: str) -> int:
        return self.indices.get(token, 3)

    def _convert_id_to_token(self, index: int) -> str:
        return self.symbols[index]

    # ------------------------------------------------------------------ encoding
    def _tokenize(self, text: str, **kwargs) -> List[str]:
        """Dictionary symbols of one document (hub.encode_document's steps, without the cut)."""
        text = " ".join(text.split())
        if self.bpe_kind == "sentencepiece":
            line = " ".join(self.sp.encode(text, out_type=str))
        else:
            line = " ".join(str(i) for i in self.gpt2.encode(text))
        return _SPACE_NORMALIZER.sub(" ", line).strip().split()

    def build_inputs_with_special_tokens(self, token_ids_0: List[int],
                                         token_ids_1: Optional[List[int]] = None) -> List[int]:
        ids = list(token_ids_0) + (list(token_ids_1) if token_ids_1 else [])
        return ids + [self.eos_token_id]

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None,
                                already_has_special_tokens: bool = False) -> List[int]:
        if already_has_special_tokens:
            return [1 if i in (0, 1, 2) else 0 for i in token_ids_0]
        return [0] * (len(token_ids_0) + len(token_ids_1 or [])) + [1]

    def create_token_type_ids_from_sequences(self, token_ids_0, token_ids_1=None) -> List[int]:
        return [0] * len(self.build_inputs_with_special_tokens(token_ids_0, token_ids_1))

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 1

    # ------------------------------------------------------------------ decoding
    def _decode(self, token_ids, skip_special_tokens: bool = False,
                clean_up_tokenization_spaces: Optional[bool] = None,
                sentence_separator: Optional[str] = None, **kwargs) -> str:
        """fairseq's Dictionary.string + BPE decode, then the sentence marker (see the module)."""
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        symbols = [self.symbols[int(i)] for i in token_ids if int(i) not in (0, 1, 2)]
        if self.bpe_kind == "sentencepiece":
            text = " ".join(symbols).replace(" ", "").replace(SPM_PIECE_SPACE, " ").strip()
        else:
            text = self._gpt2_decode(symbols)
        separator = self.sentence_separator if sentence_separator is None else sentence_separator
        return " ".join(_MARKER_RE.sub(separator, text).strip().split("\n"))

    def _gpt2_decode(self, symbols: List[str]) -> str:
        # fairseq's GPT2BPE.decode: numeric symbols are BPE ids, <unk> and <mask> stay as their own
        # characters; the madeupwordNNNN fillers of a BART's dictionary stand for no text (the
        # fairseq adapter's gpt2_decode_fillers patch decodes them to nothing too)
        data = bytearray()
        for symbol in symbols:
            if _FILLER.fullmatch(symbol):
                continue
            if symbol.isdigit() and int(symbol) in self.gpt2.id_to_token:
                data.extend(self.gpt2.char_to_byte[c] for c in self.gpt2.id_to_token[int(symbol)])
            else:
                data.extend(symbol.encode("utf-8"))
        return bytes(data).decode("utf-8", errors="replace")

    def convert_tokens_to_string(self, tokens: List[str]) -> str:
        return self._decode([self._convert_token_to_id(t) for t in tokens])

    # ------------------------------------------------------------------ saving
    def save_vocabulary(self, save_directory: str,
                        filename_prefix: Optional[str] = None) -> Tuple[str, ...]:
        import shutil

        written = []
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        for attr, name in VOCAB_FILES_NAMES.items():
            source = getattr(self, attr)
            if not source:
                continue
            target = os.path.join(save_directory, prefix + name)
            if os.path.abspath(source) != os.path.abspath(target):
                shutil.copyfile(source, target)
            written.append(target)
        return tuple(written)


__all__ = ["PyramidionTokenizer"]
