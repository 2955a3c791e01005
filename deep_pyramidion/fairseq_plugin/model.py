"""The pyramidion model: fairseq's Transformer with a sparsified, shrinking encoder.

Shape legend:
    B   batch               T   source length (after --truncate-source)
    C   channels            k   width after the last pooling layer (e.g. 512)

src tokens (B, T) -> embeddings + positions (fairseq's) -> the core's pyramid (modules/pyramid.py):
for each encoder layer i, self-attention by the --encoder-attention pattern, then, if i is in the
pooling schedule, keep min(w_i, length) token representations -> final layer norm ->
encoder_out (k, B, C). The stock fairseq decoder cross-attends to k positions instead of T, so
beam search, its reordering of encoder_out and the incremental state all scale with k.

fairseq's hooks are overridden, nothing is copied: ``build_encoder`` / ``build_decoder``,
``TransformerEncoder.build_encoder_layer`` and ``forward_scriptable``, ``reorder_encoder_out``.
"""
import logging
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from fairseq.distributed import fsdp_wrap
from fairseq.models import register_model, register_model_architecture
from fairseq.models.transformer import (
    TransformerConfig, TransformerDecoderBase, TransformerEncoder, TransformerModel,
    base_architecture,
)
from fairseq.modules.checkpoint_activations import checkpoint_wrapper

from deep_pyramidion.config import PyramidionConfig, check_source_positions
from deep_pyramidion.fairseq_plugin.checkpoint_safety import CheckpointError
from deep_pyramidion.fairseq_plugin.encoder_layer import BatchFirstLayer, PyramidionEncoderLayer
from deep_pyramidion.modules import build_attention_pattern, build_pooler, run_pyramid
from deep_pyramidion.modules.poolers.selection import selection_labels, selection_loss

logger = logging.getLogger(__name__)


def target_to_source_ids(src_dict, tgt_dict) -> Tensor:
    """(len(tgt_dict),) long: the source dictionary's id of each target symbol (unk where the
    source has no such word), so that separate dictionaries compare words, not ids."""
    return torch.tensor([src_dict.index(word) for word in tgt_dict.symbols], dtype=torch.long)


def never_needed_ids(dictionary) -> set:
    """The ids --selection-loss never labels needed: padding, eos, bos and unk."""
    return {dictionary.pad(), dictionary.eos(), dictionary.bos(), dictionary.unk()}


@register_model("pyramidion")
class PyramidionModel(TransformerModel):
    """Transformer whose encoder learns which token representations to keep (DeepPyramidion)."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        PyramidionConfig.add_args(parser)

    @classmethod
    def build_model(cls, args, task):
        pyramidion_base_architecture(args)
        # checked (and legacy flags resolved) once, before anything is built, with the run's
        # criterion (a term the model would not compute is found here, not at the first training
        # step); the encoder reads the resolved options back and the checkpoint records them
        criterion = getattr(args, "criterion", None)
        PyramidionConfig.from_namespace(args).validate(
            criterion=criterion if isinstance(criterion, str) else None).write_to(args)
        # Train short, infer long: a model trained with --max-source-positions 2048 and run with
        # --max-source-positions 8192 --truncate-source must read all 8192 tokens the task hands it
        # (sinusoidal positions extend), not be cut back to the training length.
        task_cfg = getattr(task, "cfg", None) or getattr(task, "args", None)
        task_max = getattr(task_cfg, "max_source_positions", None)
        if task_max is not None and task_max > args.max_source_positions:
            check_source_positions(task_max)   # the table is allocated from it
            if args.encoder_learned_pos:
                logger.warning(
                    "--max-source-positions %d exceeds the %d learned encoder positions of this "
                    "model; inputs stay limited to %d", task_max, args.max_source_positions,
                    args.max_source_positions)
            else:
                logger.info("encoder reads up to %d source tokens (trained with %d)",
                            task_max, args.max_source_positions)
                args.max_source_positions = task_max
        return super().build_model(args, task)

    @classmethod
    def build_encoder(cls, args, src_dict, embed_tokens):
        return PyramidionEncoder(args, src_dict, embed_tokens)

    @classmethod
    def build_decoder(cls, args, tgt_dict, embed_tokens):
        cfg = TransformerConfig.from_namespace(args)
        return PyramidionDecoder(cfg, tgt_dict, embed_tokens, no_encoder_attn=cfg.no_cross_attention)

    def forward(self, src_tokens, src_lengths, prev_output_tokens, return_all_hiddens: bool = True,
                features_only: bool = False, alignment_layer: Optional[int] = None,
                alignment_heads: Optional[int] = None):
        """fairseq's forward, plus the encoder's auxiliary losses in the decoder's extra output,
        where criteria look for such terms (criterion.py). With --selection-loss 1, in training,
        the target (here as the decoder's input, prev_output_tokens) says which source tokens
        the scorers should rank high."""
        labels = None
        if self.training and self.encoder.selection_loss:
            labels = self.selection_labels(src_tokens, prev_output_tokens)
        encoder_out = self.encoder(src_tokens, src_lengths=src_lengths,
                                   return_all_hiddens=return_all_hiddens, selection_labels=labels)
        decoder_out = self.decoder(
            prev_output_tokens, encoder_out=encoder_out, features_only=features_only,
            alignment_layer=alignment_layer, alignment_heads=alignment_heads,
            src_lengths=src_lengths, return_all_hiddens=return_all_hiddens,
        )
        for name in ("reconstruction_loss", "selection_loss"):
            if name in encoder_out:
                decoder_out[1][name] = encoder_out[name]
        return decoder_out

    def selection_labels(self, src_tokens: Tensor, prev_output_tokens: Tensor) -> Tensor:
        """(B, T) float: 1 where a source token's word occurs in the document's target. Target
        ids are mapped to source ids first, so separate dictionaries compare words, not ids."""
        src_dict, tgt_dict = self.encoder.dictionary, self.decoder.dictionary
        target = prev_output_tokens
        if src_dict.symbols != tgt_dict.symbols:
            if getattr(self, "_target_to_source", None) is None:
                self._target_to_source = target_to_source_ids(src_dict, tgt_dict)
            target = self._target_to_source.to(target.device)[target]
        return selection_labels(src_tokens, target, never_needed_ids(src_dict))

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        """fairseq's, with a dictionary that does not fit the checkpoint's embeddings named as
        such (fairseq reports a bare "size mismatch" RuntimeError)."""
        expected = self.encoder.embed_tokens.weight.size(0)
        stored = state_dict.get("encoder.embed_tokens.weight")
        if stored is not None and stored.size(0) != expected:
            raise CheckpointError(
                f"the checkpoint's token embeddings have {stored.size(0)} rows, but the "
                f"dictionary it is loaded with has {expected} entries: use the data folder "
                "(dict.src.txt / dict.tgt.txt) the model was trained or converted with")
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    @classmethod
    def from_pretrained(cls, model_name_or_path, checkpoint_file="checkpoint_best.pt",
                        data_name_or_path=".", **kwargs):
        """Load a trained summarizer: returns a hub interface with ``.summarize(texts, beam=...)``."""
        from deep_pyramidion.fairseq_plugin.hub import from_pretrained

        return from_pretrained(model_name_or_path, checkpoint_file=checkpoint_file,
                               data_name_or_path=data_name_or_path, **kwargs)


class PyramidionEncoder(TransformerEncoder):
    """fairseq's TransformerEncoder with an attention pattern and pooling between layers."""

    def __init__(self, args, dictionary, embed_tokens):
        super().__init__(args, dictionary, embed_tokens)
        from fairseq.modules.sinusoidal_positional_embedding import SinusoidalPositionalEmbedding

        if isinstance(self.embed_positions, SinusoidalPositionalEmbedding):
            # sinusoidal positions extend to any length, but fairseq reports a 1e5 cap: a document
            # over 100k tokens was skipped in training and refused by fairseq-generate even with
            # a larger --max-source-positions
            self.embed_positions.max_positions = max(self.embed_positions.max_positions,
                                                     self.max_source_positions)
        # validated and resolved by PyramidionModel.build_model (validating again would repeat
        # its warnings)
        config = PyramidionConfig.from_namespace(args)
        embed_dim = embed_tokens.embedding_dim
        # holds the compressors of blockwise-memory (no parameters otherwise, so the state dicts
        # of the other patterns have no entries for it)
        self.attention_pattern = build_attention_pattern(config, embed_dim)
        # poolers exist only for layers that pool: no parameter DDP would see unused
        self.poolers = nn.ModuleDict(
            {str(layer): build_pooler(config.pooling, embed_dim, width, config)
             for layer, width in config.schedule.items()})
        self.selection_loss = bool(config.selection_loss)

    def build_encoder_layer(self, cfg):
        """fairseq's hook, with fairseq's activation checkpointing and FSDP wrapping; the layer is
        fairseq's own plus external keys/values and usage (encoder_layer.py)."""
        cfg = TransformerConfig.from_namespace(cfg)
        layer = PyramidionEncoderLayer(cfg, return_fc=self.return_fc)
        checkpoint = cfg.checkpoint_activations
        if checkpoint:
            layer = checkpoint_wrapper(layer, offload_to_cpu=cfg.offload_activations)
        # as fairseq: a checkpointed layer is always wrapped by FSDP, whatever its size
        return fsdp_wrap(layer, min_num_params=cfg.min_params_to_wrap if not checkpoint else 0)

    def pyramid(self, src_tokens: Tensor, token_embeddings: Optional[Tensor] = None,
                keep_states: bool = False, record_pooling: bool = False):
        """The core's pyramid on the embedded tokens (B, T): batch-first PyramidOutput, before the
        final layer norm. ``record_pooling`` also returns every pooler's output with its
        assignment (deep_pyramidion.analysis reads it)."""
        padding_mask = src_tokens.eq(self.padding_idx)                     # (B, T)
        x, _ = self.forward_embedding(src_tokens, token_embeddings)        # (B, T, C)
        x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        return run_pyramid([BatchFirstLayer(layer) for layer in self.layers],
                           self.attention_pattern, self.poolers, x, padding_mask,
                           layerdrop=self.encoder_layerdrop, training=self.training,
                           keep_states=keep_states, record_pooling=record_pooling)

    def forward(self, src_tokens, src_lengths: Optional[Tensor] = None,
                return_all_hiddens: bool = False, token_embeddings: Optional[Tensor] = None,
                selection_labels: Optional[Tensor] = None):
        """fairseq's, plus ``selection_labels`` (B, T): with them the output also holds the
        scorers' selection loss (modules/poolers/selection.py)."""
        return self.forward_scriptable(src_tokens, src_lengths, return_all_hiddens,
                                       token_embeddings, selection_labels)

    def forward_scriptable(
        self,
        src_tokens,
        src_lengths: Optional[Tensor] = None,
        return_all_hiddens: bool = False,
        token_embeddings: Optional[Tensor] = None,
        selection_labels: Optional[Tensor] = None,
    ):
        out = self.pyramid(src_tokens, token_embeddings, keep_states=return_all_hiddens,
                           record_pooling=selection_labels is not None)
        x, padding_mask = out.x, out.padding_mask                          # (B, k, C), (B, k)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        x = x.transpose(0, 1)                                              # (k, B, C)
        kept_lengths = (~padding_mask).sum(dim=1, dtype=torch.int32).reshape(-1, 1)
        extra = {}
        if out.reconstruction_loss is not None:
            # blockwise-memory with a trainable --memory-compression, in training only
            extra["reconstruction_loss"] = [out.reconstruction_loss]
        if selection_labels is not None:
            # --selection-loss 1, in training only
            extra["selection_loss"] = [selection_loss(out.pooled, self.poolers, selection_labels)]
        return {
            **extra,
            "encoder_out": [x],                         # k x B x C
            "encoder_padding_mask": [padding_mask],     # B x k
            # not returned: (B, T, C) would be reordered at every beam step for nothing, since
            # the decoder never reads it
            "encoder_embedding": [],
            "encoder_states": [s.transpose(0, 1) for s in out.states],  # List[k_i x B x C]
            "fc_results": [],
            "src_tokens": [],
            "src_lengths": [kept_lengths],              # B x 1, tokens kept per document
            "row_source": [torch.arange(x.size(1), device=x.device)],  # B, see reorder_encoder_out
            "rows_per_source": [torch.ones(1, dtype=torch.long)],       # 1 (CPU), see the decoder
        }

    @torch.jit.export
    def reorder_encoder_out(self, encoder_out, new_order):
        """Beam search reorders the encoder output at every step, but beams of one source hold
        identical rows, so most of those reorders permute equal rows. ``row_source`` records which
        source each row holds; a reorder that leaves every row's source unchanged is skipped, and
        only the initial beam expansion and the removal of finished sources copy anything.

        A reorder that does copy also records how many rows each source has when they come in
        equal contiguous runs (the beam search layout), as ``rows_per_source``: the decoder reads
        it to project the encoder output to cross-attention keys/values once per source, not once
        per beam row (see PyramidionDecoder)."""
        sources = encoder_out.get("row_source", [])
        if len(sources) > 0:
            new_sources = sources[0].index_select(0, new_order)
            if new_sources.shape == sources[0].shape and torch.equal(new_sources, sources[0]):
                return encoder_out
        else:
            new_sources = new_order
        reordered = super().reorder_encoder_out(encoder_out, new_order)
        rows = rows_per_source(new_sources) if len(sources) > 0 else 1
        reordered["row_source"] = [new_sources]
        reordered["rows_per_source"] = [torch.full((1,), rows, dtype=torch.long)]
        return reordered


class PyramidionDecoder(TransformerDecoderBase):
    """fairseq's transformer decoder that shares cross-attention keys/values among the rows of one
    source.

    fairseq's MultiheadAttention can project the encoder output once per source instead of once
    per beam row when told the beam size; SequenceGenerator asks the model for that via
    ``set_beam_size``, which fairseq's TransformerModel does not have, so the request is lost, and
    a beam size left set would corrupt later teacher-forced passes. Here the decoder reads the
    layout from the encoder output it is given (``rows_per_source``, written by the encoder's
    reorder; 1 for a fresh encoder output), so it is right for every call. No parameters: the state
    dict is fairseq's.
    """

    def extract_features(self, prev_output_tokens, encoder_out=None, incremental_state=None,
                         **kwargs):
        rows = encoder_out.get("rows_per_source", []) if encoder_out is not None else []
        self.set_beam_size(int(rows[0]) if len(rows) > 0 else 1)
        return super().extract_features(prev_output_tokens, encoder_out, incremental_state,
                                        **kwargs)


def rows_per_source(sources: Tensor) -> int:
    """g when ``sources`` (rows,) is runs of exactly g equal entries with no source in two runs
    (beam search's layout: row b * g + j holds source b); else 1."""
    values, counts = torch.unique_consecutive(sources, return_counts=True)
    if counts.numel() == 0:
        return 1
    g = int(counts[0])
    if g > 1 and bool((counts == g).all()) and torch.unique(values).numel() == values.numel():
        return g
    return 1


# ------------------------------------------------------------------------------ architectures
# Each architecture sets only the options where it differs; everything else comes from
# PyramidionConfig's defaults (the pyramidion's options) and fairseq's base_architecture.
# BART's conventions (fairseq's bart_large_architecture); the pretrained context of 1024 tokens is
# the chunk, and the decoder, pretrained on 1024 encoder positions, reads 1024 pooled ones.
BART_CONVENTIONS = dict(
    encoder_learned_pos=True, decoder_learned_pos=True, layernorm_embedding=True,
    no_scale_embedding=True, encoder_normalize_before=False, decoder_normalize_before=False,
    activation_fn="gelu", share_all_embeddings=True, share_decoder_input_output_embed=True,
    dropout=0.1, attention_dropout=0.1, relu_dropout=0.0, max_target_positions=1024,
    chunk_size=1024,
)
ARCHITECTURES = {
    # the released code's sizes: 2+2 layers, d=512, ffn 2048, 8 heads, 2048 -> 512 tokens
    "pyramidion_base": dict(encoder_layers=2, decoder_layers=2),
    # DeepPyramidion: 6+6 layers
    "pyramidion_deep": dict(encoder_layers=6, decoder_layers=6),
    # tests and CPU demos: d=64, 2+2 layers, 64 -> 16 tokens in chunks of 32
    "pyramidion_tiny": dict(encoder_layers=2, decoder_layers=2, encoder_embed_dim=64,
                            encoder_ffn_embed_dim=128, encoder_attention_heads=4,
                            decoder_attention_heads=4, chunk_size=32,
                            enc_layers_and_token_width="{0: 64, 1: 16}"),
    # a pretrained BART made long (pyramidion-convert); the sizes of bart.base / bart.large
    "pyramidion_bart_base": dict(BART_CONVENTIONS, encoder_embed_dim=768,
                                 encoder_ffn_embed_dim=3072, encoder_layers=6,
                                 encoder_attention_heads=12, decoder_layers=6,
                                 decoder_attention_heads=12,
                                 enc_layers_and_token_width="{3: 2048, 5: 1024}"),
    "pyramidion_bart_large": dict(BART_CONVENTIONS, encoder_embed_dim=1024,
                                  encoder_ffn_embed_dim=4096, encoder_layers=12,
                                  encoder_attention_heads=16, decoder_layers=12,
                                  decoder_attention_heads=16,
                                  enc_layers_and_token_width="{6: 2048, 11: 1024}"),
}


def _architecture(defaults):
    def fill(args):
        for name, value in defaults.items():
            if not hasattr(args, name):
                setattr(args, name, value)
        PyramidionConfig.fill_defaults(args)
        base_architecture(args)

    return fill


for _name, _defaults in ARCHITECTURES.items():
    register_model_architecture("pyramidion", _name)(_architecture(_defaults))
pyramidion_base_architecture = _architecture(ARCHITECTURES["pyramidion_base"])
