"""Center loss forward and backward as Triton kernels: one program per block of BLOCK_B rows.

Forward walks its rows' features and their labels' centers in (BLOCK_B, BLOCK_D) tiles along D, so
every feature row and every gathered center row is read once, in coalesced row segments, and keeps
x - c for backward. Backward streams that difference: dL/dx is a scaled copy of it, and dL/dc adds
it, negated, into the labels' rows by atomics. Arithmetic runs in ACC (float32, or float64 for
float64 inputs) whatever the input dtype.

Bytes moved (B rows, D dims, e bytes per input element, a per ACC element, i per label, P programs):
    forward   B*i + 2*B*D*e read; P*a written, and B*D*e (x - c) when a gradient is wanted
    backward  B*D*e + a read; B*D*e written (dL/dx); dL/dc adds B*i read and 2*B*D*a of atomics
Keeping x - c rather than recomputing it in backward moves fewer bytes: 5*B*D*e + B*i for forward
plus dL/dx, against 5*B*D*e + 2*B*i for re-reading x, y and c[y]. Backward then reads no center,
so a center update between forward and backward cannot change the gradient (as with `gather`).
Like `gather`, the kept difference is rounded to the input dtype.
"""

import triton
import triton.language as tl


@triton.jit
def center_loss_forward_kernel(
    x_ptr,        # features (B, D), any strides
    y_ptr,        # labels (B,), any integer dtype
    c_ptr,        # centers (C, D), any strides
    partial_ptr,  # (P,) ACC: out, sum over this program's rows of ||x_i - c_{y_i}||^2
    diff_ptr,     # (B, D) contiguous, input dtype: out, x_i - c_{y_i}, written only if SAVE_DIFF
    B, D,
    stride_xb, stride_xd, stride_y, stride_cc, stride_cd,
    SAVE_DIFF: tl.constexpr, ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # Reads B*i (labels) + B*D*e (features) + B*D*e (center rows); writes one ACC per program,
    # and B*D*e if SAVE_DIFF.
    pid = tl.program_id(0)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)  # (BLOCK_B,)
    row_ok = rows < B
    labels = tl.load(y_ptr + rows * stride_y, mask=row_ok, other=0).to(tl.int64)
    rows64 = rows.to(tl.int64)
    x_rows = x_ptr + rows64[:, None] * stride_xb  # (BLOCK_B, 1)
    c_rows = c_ptr + labels[:, None] * stride_cc  # (BLOCK_B, 1)
    acc = tl.zeros((BLOCK_B, BLOCK_D), dtype=ACC)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)  # (BLOCK_D,)
        tile_ok = row_ok[:, None] & (cols < D)[None, :]
        x = tl.load(x_rows + cols[None, :] * stride_xd, mask=tile_ok, other=0.0).to(ACC)
        c = tl.load(c_rows + cols[None, :] * stride_cd, mask=tile_ok, other=0.0).to(ACC)
        diff = x - c
        acc += diff * diff
        if SAVE_DIFF:
            tl.store(diff_ptr + rows64[:, None] * D + cols[None, :], diff.to(diff_ptr.dtype.element_ty), mask=tile_ok)
    tl.store(partial_ptr + pid, tl.sum(tl.sum(acc, axis=1), axis=0))


@triton.jit
def center_loss_backward_kernel(
    diff_ptr,     # (B, D) contiguous, input dtype: x_i - c_{y_i} from forward
    y_ptr,        # labels (B,), any integer dtype; read only if WRITE_GC
    coef_ptr,     # (1,) ACC: 2 * s * grad_output, s the convention's factor
    gx_ptr,       # (B, D) contiguous, input dtype: out, dL/dx_i = coef * (x_i - c_{y_i})
    gc_ptr,       # (C, D) contiguous, ACC, zeroed: out, dL/dc_j = -sum_{y_i=j} coef * (x_i - c_j)
    B, D, stride_y,
    WRITE_GX: tl.constexpr, WRITE_GC: tl.constexpr,
    ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # Reads B*D*e + a; writes B*D*e if WRITE_GX; if WRITE_GC reads B*i and atomically adds B*D ACC values.
    pid = tl.program_id(0)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)  # (BLOCK_B,)
    row_ok = rows < B
    rows64 = rows.to(tl.int64)
    if WRITE_GC:
        labels = tl.load(y_ptr + rows * stride_y, mask=row_ok, other=0).to(tl.int64)
    coef = tl.load(coef_ptr).to(ACC)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)  # (BLOCK_D,)
        tile_ok = row_ok[:, None] & (cols < D)[None, :]
        offsets = rows64[:, None] * D + cols[None, :]  # (BLOCK_B, BLOCK_D), the same for diff and dL/dx
        grad = coef * tl.load(diff_ptr + offsets, mask=tile_ok, other=0.0).to(ACC)
        if WRITE_GX:
            tl.store(gx_ptr + offsets, grad.to(gx_ptr.dtype.element_ty), mask=tile_ok)
        if WRITE_GC:
            # Duplicate labels, within this tile or across programs, add up: each element is its own atomic.
            tl.atomic_add(gc_ptr + labels[:, None] * D + cols[None, :], -grad, mask=tile_ok, sem="relaxed")
