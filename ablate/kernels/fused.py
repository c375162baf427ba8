"""The `fused` variant's Triton kernels behind plain functions, and the bytes they move.

    fused_center_loss(features (B, D), labels (B,), centers (C, D), scale) -> 0-dim loss
    fused_update_centers(centers, features, labels, *, alpha, rule) -> None (in place)
    fused_bytes(mode, batch, classes, dim, dtype) -> bytes one call moves

The loss layer's entry (ablate.loss.fused) turns a convention into the scale; nothing here knows conventions.

The loss is one kernel in forward, which reads every feature row and its label's center row once
and keeps x - c, and one in backward, which turns x - c into dL/dx and, when the centers need it,
adds it into dL/dc by atomics. The update is O(B*D) whatever C (see ablate.kernels.update_kernels).
Runs on CUDA, or on the CPU under TRITON_INTERPRET=1; inputs arrive validated by ablate.loss.functional.
"""

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from ablate.kernels import FUSED_RULES
from ablate.kernels.loss_kernels import center_loss_backward_kernel, center_loss_forward_kernel
from ablate.kernels.update_kernels import (
    accumulate_rows_kernel,
    claim_rows_kernel,
    commit_rows_kernel,
    seed_rows_kernel,
    step_rows_kernel,
)
from ablate.traffic import LABEL_BYTES, expected_distinct_classes

# A (BLOCK_B, BLOCK_D) tile of 4096 elements keeps 16 KB of float32 per operand in flight per program.
TILE_ELEMENTS, MAX_BLOCK_D, MAX_BLOCK_B = 4096, 512, 256


@dataclass(frozen=True)
class Tile:
    """Launch shape: rows per program, columns per step along D, warps per program."""

    block_b: int
    block_d: int
    num_warps: int

    def grid(self, batch: int) -> tuple[int]:
        return (triton.cdiv(batch, self.block_b),)


def tile_for(dim: int) -> Tile:
    """The launch shape for feature dimension `dim`: whole rows up to 512 columns, 4096-element tiles.

    Short rows get many per program (D=2: 256 rows of 8 bytes, one contiguous 2 KB segment); long
    rows are walked in 512-column steps. Plain heuristics: the interpreter cannot autotune.
    """
    block_d = min(triton.next_power_of_2(max(dim, 1)), MAX_BLOCK_D)
    block_b = min(MAX_BLOCK_B, TILE_ELEMENTS // block_d)
    return Tile(block_b, block_d, num_warps=8 if block_b * block_d >= TILE_ELEMENTS else 4)


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half and single precision inputs, float64 for float64."""
    return torch.promote_types(dtype, torch.float32)


def _triton_dtype(dtype: torch.dtype) -> Any:
    return tl.float64 if dtype == torch.float64 else tl.float32


def _on(device: torch.device) -> AbstractContextManager:
    """Triton launches on the current CUDA device, so make it the tensors' device."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


class FusedCenterLoss(torch.autograd.Function):
    """scale * sum_i ||x_i - c_{y_i}||^2 with both gradients, each pass one Triton kernel."""

    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, scale: float,
                keep_diff: bool) -> torch.Tensor:
        batch, dim = features.shape
        tile = tile_for(dim)
        acc = _acc_dtype(features.dtype)
        partials = torch.empty(tile.grid(batch), dtype=acc, device=features.device)  # (P,)
        diff = torch.empty((batch, dim) if keep_diff else (0,), dtype=features.dtype, device=features.device)
        with _on(features.device):
            center_loss_forward_kernel[tile.grid(batch)](
                features, labels, centers, partials, diff, batch, dim,
                *features.stride(), labels.stride(0), *centers.stride(),
                SAVE_DIFF=keep_diff, ACC=_triton_dtype(acc), BLOCK_B=tile.block_b, BLOCK_D=tile.block_d,
                num_warps=tile.num_warps,
            )
        ctx.save_for_backward(diff, labels)
        ctx.scale, ctx.num_classes = scale, centers.shape[0]
        return partials.sum() * scale  # a fixed-order sum of P partials: the loss is deterministic

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor
                 ) -> tuple[torch.Tensor | None, None, torch.Tensor | None, None, None]:
        diff, labels = ctx.saved_tensors  # (B, D), (B,)
        want_features, _, want_centers, _, _ = ctx.needs_input_grad
        batch, dim = diff.shape
        tile = tile_for(dim)
        acc = _acc_dtype(diff.dtype)
        coef = (grad_output.to(acc) * (2.0 * ctx.scale)).reshape(1)  # stays on the device: no host sync
        grad_features = torch.empty_like(diff) if want_features else None
        grad_centers = torch.zeros((ctx.num_classes, dim), dtype=acc, device=diff.device) if want_centers else None
        with _on(diff.device):
            center_loss_backward_kernel[tile.grid(batch)](
                diff, labels, coef,
                grad_features if want_features else diff,  # placeholder, never written
                grad_centers if want_centers else coef,    # placeholder, never written
                batch, dim, labels.stride(0),
                WRITE_GX=want_features, WRITE_GC=want_centers,
                ACC=_triton_dtype(acc), BLOCK_B=tile.block_b, BLOCK_D=tile.block_d, num_warps=tile.num_warps,
            )
        if grad_centers is not None:
            grad_centers = grad_centers.to(diff.dtype)
        return grad_features, None, grad_centers, None, None


def fused_center_loss(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, scale: float
                      ) -> torch.Tensor:
    """scale * sum_i ||x_i - c_{y_i}||^2 of features (B, D), labels (B,), centers (C, D) -> 0-dim loss, float32
    (float64 for float64 inputs).

    x - c is kept for backward (B*D in the input dtype) only when a gradient will be asked for.
    """
    keep_diff = torch.is_grad_enabled() and (features.requires_grad or centers.requires_grad)
    return FusedCenterLoss.apply(features, labels, centers, scale, keep_diff)


@torch.no_grad()
def fused_update_centers(centers: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, *, alpha: float,
                         rule: str) -> None:
    """One "paper" (Eq. 4) or "ema" step on the rows of centers (C, D) named by labels (B,), in place.

    features (B, D). Work and memory O(B*D); C only sizes an uninitialized (C,) int32 table. Raises
    ValueError, leaving the centers untouched, if any new value would not be finite in their dtype.
    """
    if rule not in FUSED_RULES:
        raise ValueError(f"the fused update implements rules {', '.join(FUSED_RULES)}; got {rule!r}")
    batch, dim = features.shape
    tile = tile_for(dim)
    grid = tile.grid(batch)
    device = centers.device
    acc = _acc_dtype(centers.dtype)
    owner = torch.empty(centers.shape[0], dtype=torch.int32, device=device)  # (C,), never cleared
    sums = torch.empty((batch, dim), dtype=acc, device=device)  # (B, D), only owners' rows used
    counts = torch.empty(batch, dtype=torch.int32, device=device)  # (B,)
    alpha_t = torch.full((1,), alpha, dtype=acc, device=device)  # a tensor: Triton passes Python floats as fp32
    n_bad = torch.zeros(1, dtype=torch.int32, device=device)
    rows = dict(B=batch, D=dim)
    strides = dict(stride_y=labels.stride(0), stride_cc=centers.stride(0), stride_cd=centers.stride(1))
    blocks = dict(BLOCK_B=tile.block_b, BLOCK_D=tile.block_d, num_warps=tile.num_warps)
    with _on(device):
        claim_rows_kernel[grid](labels, owner, batch, labels.stride(0), BLOCK_B=tile.block_b)
        for kernel in (seed_rows_kernel, accumulate_rows_kernel):
            kernel[grid](features, labels, centers, owner, sums, counts, **rows,
                         stride_xb=features.stride(0), stride_xd=features.stride(1), **strides,
                         ACC=_triton_dtype(acc), **blocks)
        step_rows_kernel[grid](labels, centers, owner, sums, counts, alpha_t, n_bad, **rows, **strides,
                               PAPER=(rule == "paper"), ACC=_triton_dtype(acc), **blocks)
        commit_rows_kernel[grid](labels, centers, owner, sums, n_bad, **rows, **strides, **blocks)
    bad = int(n_bad.item())
    if bad:
        raise ValueError(f"the {rule!r} step with alpha={alpha} gave {bad} non-finite center values in "
                         f"{centers.dtype}; the centers were left untouched")
    torch.autograd.graph.increment_version(centers)  # written behind autograd's back: let it see the change


def fused_bytes(mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype, *,
                centers_grad: bool = False) -> int:
    """Bytes read plus written by one fused call in `mode`: "forward", "backward", "full" or "update".

    B batch, C classes, D dim, e bytes per element of dtype, a per accumulation element (4, or 8 for
    float64), i = 8 per int64 label, P = ceil(B / BLOCK_B) programs, U = expected distinct labels.
    Atomics count as a read and a write; masked-off rows move nothing.
        forward   as in training (a gradient wanted): kernel Bi + 2BDe + Pa + BDe (x - c kept);
                  partials.sum() Pa + a; times the scale 2a
        backward  coef = 2s * grad_output 2a; kernel BDe + a + BDe (dL/dx only, as the benchmarks
                  differentiate). centers_grad adds the labels Bi, zeros CDa, atomics 2BDa and, for
                  half dtypes, the cast to the centers' dtype CDa + CDe
        full      forward + backward
        update    the whole update_centers(..., variant="fused") call: its checks (labels min and max
                  2Bi, all_finite(features) BDe + 2a + 1), alpha and flag a + 4, then the kernels,
                  each of which after claim also reads the labels and their owners (Bi + 4B):
                  claim Bi + 4B; seed 2UDe + UDa + 4U; accumulate 2(B-U)De + 2(B-U)(Da + 4);
                  step a + 4U + UD(2a + e) + 8P; commit 4P + UDa + UDe; the flag read back 4
    """
    B, C, D = batch, classes, dim
    e = torch.empty((), dtype=dtype).element_size()
    a = _acc_dtype(dtype).itemsize
    i = LABEL_BYTES
    P = tile_for(D).grid(B)[0]
    forward: list[tuple[float, float]] = [  # (bytes read, bytes written) per op; U below is an expected value
        (B * i + 2 * B * D * e, P * a + B * D * e),  # center_loss_forward_kernel, keeping x - c
        (P * a, a),                                  # partials.sum()
        (a, a),                                      # * scale
    ]
    backward: list[tuple[float, float]] = [
        (a, a),                                      # coef = grad_output * 2s
        (B * D * e + a, B * D * e),                  # center_loss_backward_kernel, dL/dx
    ]
    if centers_grad:
        backward += [
            (0, C * D * a),                          # zeros for dL/dc
            (B * i + B * D * a, B * D * a),          # the kernel's labels and atomics into it
            *([(C * D * a, C * D * e)] if e != a else []),  # cast to the centers' dtype
        ]
    if mode == "update":
        U = expected_distinct_classes(B, C)
        table = B * i + B * 4  # every kernel after claim reads the labels and their owners
        ops = [
            (2 * B * i, 0),                                    # check_inputs: labels.min(), labels.max()
            (B * D * e, a), (a, 1),                            # all_finite(features): sum, isfinite
            (0, a), (0, 4),                                    # alpha tensor, zeroed flag
            (B * i, B * 4),                                    # claim_rows_kernel
            (table + 2 * U * D * e, U * D * a + U * 4),        # seed_rows_kernel
            (table + 2 * (B - U) * D * e + (B - U) * (D * a + 4), (B - U) * (D * a + 4)),  # accumulate (atomics)
            (table + a + U * 4 + U * D * (a + e) + 4 * P, U * D * a + 4 * P),  # step_rows_kernel
            (4 * P + table + U * D * a, U * D * e),            # commit_rows_kernel
            (4, 0),                                            # flag read back
        ]
    elif mode in ("forward", "backward", "full"):
        ops = {"forward": forward, "backward": backward, "full": forward + backward}[mode]
    else:
        raise ValueError(f"unknown mode {mode!r}; expected forward, backward, full or update")
    return int(sum(r + w for r, w in ops))
