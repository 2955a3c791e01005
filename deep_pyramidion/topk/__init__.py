"""Successive-halving top-k: the trainable pooling operator of the Pyramidion (design.md section 3).

Shape legend:
    B  batch size            n  input length            k  output width
    M  members per output (2**d, d = rounds)            D  feature size

    y, y_scores, y_mask = successive_halving_topk(x, scores, k, mask=None, base=20.0,
                                                  flip_right=True, sort_back=True, impl="auto")
    x (B, n, D), scores (B, n) (already squashed), mask (B, n) bool True = padding
    -> y (B, k, D) in x.dtype, y_scores (B, k), y_mask (B, k) bool True = output is only padding

The two phases are public too, for callers that want the members of each output (which inputs
it mixes, with which weight: the analysis tools draw them):

    index, weight, y_scores, y_mask = successive_halving_assignment(scores, k, mask, base, ...)
    y = weighted_sum(x, index, weight, impl="auto")    # == successive_halving_topk(...)[0]
    index (B, k, M) long, -1 = virtual padding member; weight (B, k, M) float32

Implementations (one file each):
    reference  reference.py    round by round, one batch item at a time: the specification
    torch      torch_impl.py   phase 1 (tournament on scores) + phase 2 (one embedding_bag)
    triton     triton_impl.py  torch phase 1 + Triton kernels for phase 2 (CUDA, or CPU under
                               TRITON_INTERPRET=1)
    auto       triton for CUDA tensors when triton works, torch elsewhere. The environment
               variable DEEP_PYRAMIDION_TOPK_IMPL (one of the names above) replaces "auto" for a
               whole run.
When Triton is missing or fails, the torch path is used instead and one warning is logged.

Numerics: base**s and the pair softmax are computed in float32 (float64 for float64 scores) even
for bf16/fp16 inputs; y comes back in x.dtype, y_scores in scores.dtype. Scores must be finite
where not padded (checked) and small enough for base**s to fit float32 (s < ~29 for base 20; the
model's sigmoid scores are in (0, 1]). Values stored at padded positions never reach the output,
provided they are finite (their weight is exactly 0, and 0 * inf would be NaN).
"""
from __future__ import annotations

import importlib.util
import logging
import os
from typing import Optional, Tuple

import torch

from . import reference, torch_impl
from .common import check_inputs, check_scores

__all__ = ["successive_halving_topk", "successive_halving_assignment", "weighted_sum",
           "IMPLS", "ENV_VAR"]

logger = logging.getLogger(__name__)

IMPLS = ("reference", "torch", "triton", "auto")
ENV_VAR = "DEEP_PYRAMIDION_TOPK_IMPL"

_triton_status = {}  # device type -> True/False once probed
_warned = set()  # fallback reasons already logged (each is logged once per process)


def successive_halving_topk(
    x: torch.Tensor,
    scores: torch.Tensor,
    k: int,
    mask: Optional[torch.Tensor] = None,
    base: float = 20.0,
    flip_right: bool = True,
    sort_back: bool = True,
    impl: str = "auto",
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pool n representations down to k by successive halving; see the module docstring.

    Raises ValueError for a bad argument (naming it), for NaN/inf scores at non-padded positions
    and for an unknown impl.
    """
    k = check_inputs(x, scores, k, mask, base)
    if _resolve_impl(impl, x.device) == "reference":
        return reference.successive_halving_topk_reference(
            x, scores, k, mask, base, flip_right, sort_back
        )
    idx, w, y_scores, y_mask = torch_impl.tournament(scores, k, mask, base, flip_right, sort_back)
    return weighted_sum(x, idx, w, impl), y_scores, y_mask


def successive_halving_assignment(
    scores: torch.Tensor,
    k: int,
    mask: Optional[torch.Tensor] = None,
    base: float = 20.0,
    flip_right: bool = True,
    sort_back: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Phase 1 alone: the tournament on the (B, n) scores.

    Returns index (B, k, M) long (input positions, -1 for virtual padding members; the groups
    partition [0, n)), weight (B, k, M) float32 (differentiable w.r.t. scores, 0 for padding),
    y_scores (B, k) and y_mask (B, k). Raises ValueError like successive_halving_topk.
    """
    k = check_scores(scores, k, mask, base)
    return torch_impl.tournament(scores, k, mask, base, flip_right, sort_back)


def weighted_sum(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor, impl: str = "auto"
                 ) -> torch.Tensor:
    """Phase 2: y[b, j] = sum_m weight[b, j, m] * x[b, index[b, j, m]] for an assignment of
    :func:`successive_halving_assignment` (its groups partition the inputs: the backward is a
    permutation). impl as in successive_halving_topk; "reference" means the torch path here."""
    if _resolve_impl(impl, x.device) == "triton":
        from . import triton_impl  # imported late: importing triton costs time and may fail

        return triton_impl.gather_weighted_sum(x, index, weight, assume_partition=True)
    return torch_impl.gather_weighted_sum(x, index, weight, assume_partition=True)


def _resolve_impl(impl: str, device: torch.device) -> str:
    """Map the impl argument (and the environment) to "reference", "torch" or "triton"."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}; got {impl!r}")
    if impl == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            if env not in IMPLS:
                raise ValueError(f"{ENV_VAR} must be one of {', '.join(IMPLS)}; got {env!r}")
            impl = env
    if impl == "auto":
        return "triton" if device.type == "cuda" and _triton_works(device, quiet=True) else "torch"
    if impl == "triton" and not _triton_works(device, quiet=False):
        return "torch"
    return impl


def _triton_interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _triton_works(device: torch.device, quiet: bool) -> bool:
    """Whether the Triton kernels run on this device type; probed once with a tiny problem.

    quiet: "auto" on a machine without Triton is the normal case and is not worth a warning.
    """
    if importlib.util.find_spec("triton") is None:
        if not quiet:
            _warn_once("missing", "impl='triton' but triton is not installed; using the torch path")
        return False
    if device.type != "cuda" and not _triton_interpret():
        if not quiet:
            _warn_once(
                "cpu",
                f"impl='triton' needs CUDA tensors (got {device.type}) unless TRITON_INTERPRET=1 "
                "is set before triton is imported; using the torch path",
            )
        return False
    key = device.type
    if key not in _triton_status:
        _triton_status[key] = _probe_triton(device)
    return _triton_status[key]


def _probe_triton(device: torch.device) -> bool:
    """Compile and run forward + backward once on a tiny problem; any failure disables Triton."""
    try:
        from . import triton_impl

        if not triton_impl.HAS_TRITON:
            raise RuntimeError("import triton failed")
        # Fixed values (no draw from the global RNG); grad enabled even if the caller disabled it.
        with torch.inference_mode(False), torch.enable_grad():
            x = torch.linspace(-1, 1, 64, device=device).view(1, 4, 16).requires_grad_()
            idx = torch.tensor([[[0, 3], [1, 2]]], device=device)
            w = torch.tensor([[[0.25, 0.75], [0.5, 0.5]]], device=device, requires_grad=True)
            y = triton_impl.gather_weighted_sum(x, idx, w, assume_partition=True)
            y.sum().backward()
            expected = torch_impl.gather_weighted_sum(x, idx, w).detach()
            ok = torch.allclose(y.detach(), expected, atol=1e-5)
        if not ok:
            raise RuntimeError("the Triton kernel disagrees with the torch path on a tiny problem")
        return True
    except Exception as exc:  # compile errors, missing toolchain, driver problems, ...
        _warn_once("broken", f"Triton kernels failed on {device.type} ({exc!r}); using the torch path")
        return False


def _warn_once(reason: str, message: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        logger.warning(message)
