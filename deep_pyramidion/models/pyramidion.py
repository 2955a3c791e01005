"""The pyramidion model: fairseq's Transformer with a sparsified, shrinking encoder.

Shape legend:
    B   batch               T   source length (after --truncate-source)
    C   channels            k   width after the last pooling layer (e.g. 512)

src tokens (B, T) -> embeddings + positions -> for each encoder layer i: self-attention restricted to
chunks of --chunk-size tokens (or full), then, if i is in the pooling schedule, keep min(w_i, length)
token representations -> final layer norm -> encoder_out (k, B, C). The stock fairseq
TransformerDecoder cross-attends to k positions instead of T, so beam search, its reordering of
encoder_out and the incremental state all scale with k.
"""
import logging
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from fairseq.distributed import fsdp_wrap
from fairseq.models import register_model, register_model_architecture
from fairseq.models.transformer import (
    TransformerConfig, TransformerEncoder, TransformerModel, base_architecture,
)
from fairseq.modules.checkpoint_activations import checkpoint_wrapper

from deep_pyramidion.modules.attention import (
    ATTENTION_PATTERNS, NO_COMPRESSION, LayerOutput, build_attention_pattern,
    check_attention_options,
)
from deep_pyramidion.modules.encoder_layer import PyramidionEncoderLayer
from deep_pyramidion.modules.pooling import POOLERS, build_pooler
from deep_pyramidion.schedule import FLAG as SCHEDULE_FLAG
from deep_pyramidion.schedule import inactive_pooling_layers, parse_pooling_schedule

logger = logging.getLogger(__name__)

ENCODER_ATTENTIONS = tuple(ATTENTION_PATTERNS)  # blockwise, full, strided, fixed, blockwise-memory
NO_POOLING = ("none", "lambda")  # "lambda" is the released code's name for the identity
TOPK_IMPLS = ("auto", "reference", "torch", "triton")
# --use-sparse-attn of the released code -> (--encoder-attention, forced --encoder-pooling or None)
LEGACY_SPARSE_ATTN = {
    "pooler": ("blockwise", None),
    "only_blockwise": ("blockwise", "none"),
    "pooler_no_block": ("full", None),
}


@register_model("pyramidion")
class PyramidionModel(TransformerModel):
    """Transformer whose encoder learns which token representations to keep (DeepPyramidion)."""

    def __init__(self, args, encoder, decoder):
        super().__init__(args, encoder, decoder)
        # a bound method, not a module: the decoder is not registered twice (see
        # PyramidionEncoder.reorder_encoder_out)
        encoder.set_decoder_beam_size = decoder.set_beam_size

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        # no defaults here: fairseq adds model args with argparse.SUPPRESS and the architecture
        # functions below fill in whatever the user did not give
        parser.add_argument("--encoder-attention", choices=ENCODER_ATTENTIONS,
                            help="self-attention pattern of the encoder (default: blockwise); "
                                 "see deep_pyramidion/modules/attention.py")
        parser.add_argument("--attention-stride", type=int, metavar="L",
                            help="strided/fixed: block length l; 0 = ceil(sqrt(length)) at each "
                                 "layer (default: 0)")
        parser.add_argument("--fixed-summary-cells", type=int, metavar="S",
                            help="fixed: summary cells per block (default: 4)")
        parser.add_argument("--memory-compression", type=str, metavar="NAME",
                            help="blockwise-memory: also attend to the earlier chunks, each "
                                 "compressed by this pooler (avg, max, conv, dilated-conv, "
                                 "most-used, seqpool, topk, hard-topk); none = off (default)")
        parser.add_argument("--memory-compression-rate", type=int, metavar="R",
                            help="blockwise-memory: a chunk of c tokens is compressed to "
                                 "ceil(c/R) slots (default: 4)")
        parser.add_argument("--compressed-memory-chunks", type=int, metavar="M",
                            help="blockwise-memory: compressed memory holds the M most recent "
                                 "chunks before the previous one; 0 = all (default: 0)")
        parser.add_argument("--compression-taps", type=int, metavar="K",
                            help="conv / dilated-conv pooling: learned taps, resampled to the "
                                 "r tokens of a window (conv) or one per window over K windows "
                                 "(dilated-conv) (default: 4)")
        parser.add_argument("--chunk-size", type=int, metavar="N",
                            help="tokens per chunk of blockwise attention (default: 512)")
        parser.add_argument("--encoder-pooling", type=str, metavar="NAME",
                            help="pooling between encoder layers: topk (default), hard-topk, "
                                 "avg, max, conv, dilated-conv, most-used, seqpool, none; "
                                 "'lambda' is the released code's name for none")
        parser.add_argument("--encoder-pooling-arch", choices=("linear", "ffn"),
                            help="token scorer of the pooler (default: linear)")
        parser.add_argument("--enc-layers-and-token-width", type=str, metavar="DICT",
                            help='pooling schedule, e.g. "{0: 2048, 1: 512}": after layer 0 keep '
                                 "at most 2048 tokens, after layer 1 at most 512")
        parser.add_argument("--sort-back", type=int, choices=(0, 1),
                            help="1: pooled tokens keep document order (default: 1)")
        parser.add_argument("--flip-right", type=int, choices=(0, 1),
                            help="1: pair the best-scored token with the worst in each halving "
                                 "round (default: 1)")
        parser.add_argument("--topk-softmax-base", type=float, metavar="B",
                            help="pair weights are softmax(B**s_left, B**s_right) (default: 20)")
        parser.add_argument("--topk-impl", choices=TOPK_IMPLS,
                            help="top-k kernel: auto (triton on CUDA, torch elsewhere; env "
                                 "DEEP_PYRAMIDION_TOPK_IMPL overrides), reference, torch, triton")
        parser.add_argument("--use-sparse-attn", choices=tuple(LEGACY_SPARSE_ATTN),
                            help="legacy: pooler = blockwise + pooling, only_blockwise = no "
                                 "pooling, pooler_no_block = full attention + pooling")

    @classmethod
    def build_model(cls, args, task):
        pyramidion_base_architecture(args)
        resolve_pyramidion_options(args)
        # Train short, infer long: a model trained with --max-source-positions 2048 and run with
        # --max-source-positions 8192 --truncate-source must read all 8192 tokens the task hands it
        # (sinusoidal positions extend), not be cut back to the training length.
        task_cfg = getattr(task, "cfg", None) or getattr(task, "args", None)
        task_max = getattr(task_cfg, "max_source_positions", None)
        if task_max is not None and task_max > args.max_source_positions:
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

    def forward(self, src_tokens, src_lengths, prev_output_tokens, return_all_hiddens: bool = True,
                features_only: bool = False, alignment_layer: Optional[int] = None,
                alignment_heads: Optional[int] = None):
        """fairseq's forward, plus the encoder's auxiliary loss in the decoder's extra output, where
        criteria look for such terms (label_smoothed_cross_entropy_with_reconstruction does)."""
        encoder_out = self.encoder(src_tokens, src_lengths=src_lengths,
                                   return_all_hiddens=return_all_hiddens)
        decoder_out = self.decoder(
            prev_output_tokens, encoder_out=encoder_out, features_only=features_only,
            alignment_layer=alignment_layer, alignment_heads=alignment_heads,
            src_lengths=src_lengths, return_all_hiddens=return_all_hiddens,
        )
        if "reconstruction_loss" in encoder_out:
            decoder_out[1]["reconstruction_loss"] = encoder_out["reconstruction_loss"]
        return decoder_out

    @classmethod
    def from_pretrained(cls, model_name_or_path, checkpoint_file="checkpoint_best.pt",
                        data_name_or_path=".", **kwargs):
        """Load a trained summarizer: returns a hub interface with ``.summarize(texts, beam=...)``."""
        from deep_pyramidion.hub import from_pretrained

        return from_pretrained(model_name_or_path, checkpoint_file=checkpoint_file,
                               data_name_or_path=data_name_or_path, **kwargs)


def resolve_pyramidion_options(args):
    """Map legacy flags onto the clean ones and reject bad values before any training step."""
    legacy = getattr(args, "use_sparse_attn", None)
    if legacy is not None:
        attention, pooling = LEGACY_SPARSE_ATTN[legacy]
        if args.encoder_attention is not None and args.encoder_attention != attention:
            raise ValueError(
                f"--use-sparse-attn {legacy} means --encoder-attention {attention}, but "
                f"--encoder-attention {args.encoder_attention} was given; drop one of them")
        args.encoder_attention = attention
        if pooling is not None:
            args.encoder_pooling = pooling
    if args.encoder_attention is None:
        args.encoder_attention = "blockwise"
    if args.encoder_pooling == "lambda":
        args.encoder_pooling = "none"
    if args.encoder_pooling not in NO_POOLING and args.encoder_pooling not in POOLERS:
        raise ValueError(
            f"--encoder-pooling: unknown value {args.encoder_pooling!r}; choose from "
            f"{sorted(set(POOLERS) | {'none', 'lambda'})}")
    check_attention_options(args)
    if getattr(POOLERS.get(args.encoder_pooling), "needs_attention", False) \
            and args.encoder_layerdrop > 0:
        raise ValueError(f"--encoder-pooling {args.encoder_pooling} ranks tokens by the attention "
                         f"of the layer before it, which --encoder-layerdrop "
                         f"{args.encoder_layerdrop} may skip; use --encoder-layerdrop 0")
    if not isinstance(args.chunk_size, int) or args.chunk_size <= 0:
        raise ValueError(f"--chunk-size must be a positive integer, got {args.chunk_size!r}")
    if args.topk_impl not in TOPK_IMPLS:
        raise ValueError(f"--topk-impl: unknown value {args.topk_impl!r}; choose from {list(TOPK_IMPLS)}")
    if args.topk_softmax_base <= 1.0:
        raise ValueError(f"--topk-softmax-base must be > 1, got {args.topk_softmax_base}")
    schedule = parse_pooling_schedule(args.enc_layers_and_token_width, args.encoder_layers)
    if args.encoder_pooling != "none":
        for layer, width, length in inactive_pooling_layers(schedule, args.max_source_positions):
            logger.warning(
                "%s: layer %d keeps %d tokens, but at --max-source-positions %d it never receives "
                "more than %d, so it selects nothing in training and its scorer stays untrained; "
                "on longer inputs at inference it would select tokens with untrained scores",
                SCHEDULE_FLAG, layer, width, args.max_source_positions, length)


class PyramidionEncoder(TransformerEncoder):
    """fairseq's TransformerEncoder with blockwise attention and pooling between layers."""

    def __init__(self, args, dictionary, embed_tokens):
        super().__init__(args, dictionary, embed_tokens)
        from fairseq.modules.sinusoidal_positional_embedding import SinusoidalPositionalEmbedding

        if isinstance(self.embed_positions, SinusoidalPositionalEmbedding):
            # sinusoidal positions extend to any length, but fairseq reports a 1e5 cap: a document
            # over 100k tokens was skipped in training and refused by fairseq-generate even with
            # a larger --max-source-positions
            self.embed_positions.max_positions = max(self.embed_positions.max_positions,
                                                     self.max_source_positions)
        self.attention = args.encoder_attention
        self.chunk_size = args.chunk_size
        # computes each layer's attention by its pattern; holds the compressors of
        # blockwise-memory (no parameters otherwise, so full/blockwise state dicts are unchanged)
        self.attention_pattern = build_attention_pattern(args, embed_tokens.embedding_dim)
        schedule = {}
        if args.encoder_pooling not in NO_POOLING:
            schedule = parse_pooling_schedule(args.enc_layers_and_token_width, args.encoder_layers)
        # scorers exist only for layers that pool: no parameter DDP would see unused
        embed_dim = embed_tokens.embedding_dim
        self.poolers = nn.ModuleDict(
            {str(layer): build_pooler(args.encoder_pooling, embed_dim, width, args)
             for layer, width in schedule.items()})

    def build_encoder_layer(self, cfg):
        """fairseq's hook, with fairseq's activation checkpointing and FSDP wrapping; the layer is
        fairseq's own plus external keys/values and usage (modules/encoder_layer.py)."""
        cfg = TransformerConfig.from_namespace(cfg)
        layer = PyramidionEncoderLayer(cfg, return_fc=self.return_fc)
        checkpoint = cfg.checkpoint_activations
        if checkpoint:
            layer = checkpoint_wrapper(layer, offload_to_cpu=cfg.offload_activations)
        # as fairseq: a checkpointed layer is always wrapped by FSDP, whatever its size
        return fsdp_wrap(layer, min_num_params=cfg.min_params_to_wrap if not checkpoint else 0)

    def run_layer(self, index: int, x: Tensor, padding_mask: Optional[Tensor],
                  need_received: bool = False) -> LayerOutput:
        """Layer ``index`` on x (T, B, C) with the --encoder-attention pattern; with
        ``need_received`` the output also holds the attention each token received, (T, B)."""
        return self.attention_pattern.run(self.layers[index], index, x, padding_mask, need_received)

    def pool(self, index: int, x: Tensor, padding_mask: Tensor, received: Optional[Tensor] = None):
        pooler = self.poolers[str(index)]
        if getattr(pooler, "needs_attention", False):
            if received is None:
                raise RuntimeError(f"pooler of layer {index} needs the layer's attention")
            # (T, B, C) -> (B, T, C), usage (T, B) -> (B, T)
            y, y_mask = pooler(x.transpose(0, 1), padding_mask, received.transpose(0, 1))
        else:
            y, y_mask = pooler(x.transpose(0, 1), padding_mask)  # (T, B, C) -> (B, T, C) -> (B, k, C)
        return y.transpose(0, 1), y_mask                         # (k, B, C), (B, k)

    def forward_scriptable(
        self,
        src_tokens,
        src_lengths: Optional[Tensor] = None,
        return_all_hiddens: bool = False,
        token_embeddings: Optional[Tensor] = None,
    ):
        padding_mask = src_tokens.eq(self.padding_idx)                     # (B, T)
        x, _ = self.forward_embedding(src_tokens, token_embeddings)        # (B, T, C)
        x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        x = x.transpose(0, 1)                                              # (T, B, C)
        encoder_states = [x] if return_all_hiddens else []

        reconstruction_losses = []
        for index in range(self.num_layers):
            pools = str(index) in self.poolers
            needs_attention = pools and getattr(self.poolers[str(index)], "needs_attention", False)
            # LayerDrop by hand: iterating a LayerDropModuleList would hide which index a layer has
            dropped = self.training and self.encoder_layerdrop > 0 and \
                torch.rand(()).item() < self.encoder_layerdrop
            received = None
            if not dropped:
                out = self.run_layer(index, x, padding_mask if padding_mask.any() else None,
                                     need_received=needs_attention)
                x, received = out.x, out.received
                if out.reconstruction_loss is not None:
                    reconstruction_losses.append(out.reconstruction_loss)
            if pools:
                # (k_i, B, C), (B, k_i)
                x, padding_mask = self.pool(index, x, padding_mask, received)
            if return_all_hiddens:
                encoder_states.append(x)

        if self.layer_norm is not None:
            x = self.layer_norm(x)
        kept_lengths = (~padding_mask).sum(dim=1, dtype=torch.int32).reshape(-1, 1)
        extra = {}
        if reconstruction_losses:
            # blockwise-memory with a trainable --memory-compression, in training only
            extra["reconstruction_loss"] = [torch.stack(reconstruction_losses).sum()]
        return {
            **extra,
            "encoder_out": [x],                         # k x B x C
            "encoder_padding_mask": [padding_mask],     # B x k
            # not returned: (B, T, C) would be reordered at every beam step for nothing, since
            # the decoder never reads it
            "encoder_embedding": [],
            "encoder_states": encoder_states,           # List[k_i x B x C], widths shrink
            "fc_results": [],
            "src_tokens": [],
            "src_lengths": [kept_lengths],              # B x 1, tokens kept per document
            "row_source": [torch.arange(x.size(1), device=x.device)],  # B, see reorder_encoder_out
        }

    def forward(self, src_tokens, src_lengths: Optional[Tensor] = None,
                return_all_hiddens: bool = False, token_embeddings: Optional[Tensor] = None):
        # a new encoder output: its rows are documents until beam search expands them
        self._set_decoder_beam(1)
        return super().forward(src_tokens, src_lengths, return_all_hiddens, token_embeddings)

    def _set_decoder_beam(self, beam: int):
        setter = getattr(self, "set_decoder_beam_size", None)
        if setter is not None:
            setter(beam)

    @torch.jit.export
    def reorder_encoder_out(self, encoder_out, new_order):
        """Beam search reorders the encoder output at every step, but beams of one source hold
        identical rows, so most of those reorders permute equal rows. ``row_source`` records which
        source each row holds; a reorder that leaves every row's source unchanged is skipped, and
        only the initial beam expansion and the removal of finished sources copy anything.

        A reorder that does copy also tells the decoder how many rows each source has when they
        come in equal contiguous runs (the beam search layout): fairseq's MultiheadAttention then
        projects the encoder output to cross-attention keys/values once per source, not once per
        beam row, and caches them once per source. (SequenceGenerator asks the model for this via
        ``set_beam_size``, which fairseq's TransformerModel does not have, so the request is lost.)
        Every encoder forward resets it to 1, so teacher-forced passes never see a beam size."""
        sources = encoder_out.get("row_source", [])
        if len(sources) > 0:
            new_sources = sources[0].index_select(0, new_order)
            if new_sources.shape == sources[0].shape and torch.equal(new_sources, sources[0]):
                return encoder_out
        else:
            new_sources = new_order
        reordered = super().reorder_encoder_out(encoder_out, new_order)
        reordered["row_source"] = [new_sources]
        self._set_decoder_beam(rows_per_source(new_sources) if len(sources) > 0 else 1)
        return reordered


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


@register_model_architecture("pyramidion", "pyramidion_base")
def pyramidion_base_architecture(args):
    """The released code's sizes: 2+2 layers, d=512, ffn 2048, 8 heads, 2048 -> 512 tokens."""
    args.encoder_layers = getattr(args, "encoder_layers", 2)
    args.decoder_layers = getattr(args, "decoder_layers", 2)
    args.encoder_attention = getattr(args, "encoder_attention", None)  # resolved with --use-sparse-attn
    args.chunk_size = getattr(args, "chunk_size", 512)
    args.encoder_pooling = getattr(args, "encoder_pooling", "topk")
    args.encoder_pooling_arch = getattr(args, "encoder_pooling_arch", "linear")
    args.enc_layers_and_token_width = getattr(args, "enc_layers_and_token_width", "{0: 2048, 1: 512}")
    args.sort_back = getattr(args, "sort_back", 1)
    args.flip_right = getattr(args, "flip_right", 1)
    args.topk_softmax_base = getattr(args, "topk_softmax_base", 20.0)
    args.topk_impl = getattr(args, "topk_impl", "auto")
    args.use_sparse_attn = getattr(args, "use_sparse_attn", None)
    args.attention_stride = getattr(args, "attention_stride", 0)
    args.fixed_summary_cells = getattr(args, "fixed_summary_cells", 4)
    args.memory_compression = getattr(args, "memory_compression", NO_COMPRESSION)
    args.memory_compression_rate = getattr(args, "memory_compression_rate", 4)
    args.compressed_memory_chunks = getattr(args, "compressed_memory_chunks", 0)
    args.compression_taps = getattr(args, "compression_taps", 4)
    base_architecture(args)


@register_model_architecture("pyramidion", "pyramidion_deep")
def pyramidion_deep_architecture(args):
    """DeepPyramidion: 6+6 layers."""
    args.encoder_layers = getattr(args, "encoder_layers", 6)
    args.decoder_layers = getattr(args, "decoder_layers", 6)
    pyramidion_base_architecture(args)


@register_model_architecture("pyramidion", "pyramidion_tiny")
def pyramidion_tiny_architecture(args):
    """For tests and CPU demos: d=64, 2+2 layers, 64 -> 16 tokens in chunks of 32."""
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 64)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 128)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 4)
    args.decoder_attention_heads = getattr(args, "decoder_attention_heads", 4)
    args.chunk_size = getattr(args, "chunk_size", 32)
    args.enc_layers_and_token_width = getattr(args, "enc_layers_and_token_width", "{0: 64, 1: 16}")
    pyramidion_base_architecture(args)
