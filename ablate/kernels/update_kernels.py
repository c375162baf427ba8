"""The center update c_j -= step_j * sum_{y_i=j} (c_j - x_i) as Triton kernels, with no work of size C.

Nothing here is indexed by class except the labelled rows of the centers: every class present in
the batch is represented by one of its samples, its "owner", and its sums live in the owner's row
of a (B, D) scratch buffer that is never cleared (only owners' rows are written before they are read).
The five launches, each over blocks of BLOCK_B samples:

    claim       owner[y_i] = i                      any one i per label wins; owner (C,) is never cleared
    seed        owners:     sums[i] = c_{y_i} - x_i, counts[i] = 1
    accumulate  the others: sums[owner] += c_{y_i} - x_i, counts[owner] += 1   (atomics)
    step        owners:     sums[i] = c_{y_i} - step * sums[i], step = alpha/(1+n) ("paper") or alpha ("ema");
                            counts the values that are not finite once rounded to the centers' dtype
    commit      owners, only if that count is 0: c_{y_i} = sums[i]

Every delta is taken from the centers before the step, since no center is written before commit.
Bytes are written beside each kernel: B samples, U distinct labels, D dims, e bytes per center
element, a per ACC element (float32, or float64 for float64 centers), i per label.
"""

import triton
import triton.language as tl


@triton.jit
def _sample_block(y_ptr, owner_ptr, B, stride_y, BLOCK_B: tl.constexpr):
    """This program's samples (BLOCK_B,), which exist, their labels (int64) and their labels' owners."""
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    labels = tl.load(y_ptr + rows * stride_y, mask=row_ok, other=0).to(tl.int64)
    owners = tl.load(owner_ptr + labels, mask=row_ok, other=-1)
    return rows, row_ok, labels, owners


@triton.jit
def claim_rows_kernel(
    y_ptr,      # labels (B,), any integer dtype
    owner_ptr,  # (C,) int32, uninitialized: out, owner[y_i] = some i with that label
    B, stride_y,
    BLOCK_B: tl.constexpr,
):
    # Reads B*i; writes B*4 (scattered; racing stores to one label leave one of them, all valid).
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    labels = tl.load(y_ptr + rows * stride_y, mask=row_ok, other=0).to(tl.int64)
    tl.store(owner_ptr + labels, rows, mask=row_ok)


@triton.jit
def seed_rows_kernel(
    x_ptr,      # features (B, D), any strides
    y_ptr,      # labels (B,)
    c_ptr,      # centers (C, D), any strides
    owner_ptr,  # (C,) int32, from claim
    sum_ptr,    # (B, D) ACC scratch: out, owners' rows = c_{y_i} - x_i
    count_ptr,  # (B,) int32: out, owners' entries = 1
    B, D,
    stride_xb, stride_xd, stride_y, stride_cc, stride_cd,
    ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # Reads B*i + B*4 + U*D*e (features) + U*D*e (center rows); writes U*D*a + U*4.
    rows, row_ok, labels, owners = _sample_block(y_ptr, owner_ptr, B, stride_y, BLOCK_B)
    is_owner = row_ok & (owners == rows)
    rows64 = rows.to(tl.int64)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        tile_ok = is_owner[:, None] & (cols < D)[None, :]
        x = tl.load(x_ptr + rows64[:, None] * stride_xb + cols[None, :] * stride_xd, mask=tile_ok).to(ACC)
        c = tl.load(c_ptr + labels[:, None] * stride_cc + cols[None, :] * stride_cd, mask=tile_ok).to(ACC)
        tl.store(sum_ptr + rows64[:, None] * D + cols[None, :], c - x, mask=tile_ok)
    tl.store(count_ptr + rows, tl.full((BLOCK_B,), 1, tl.int32), mask=is_owner)


@triton.jit
def accumulate_rows_kernel(
    x_ptr,      # features (B, D), any strides
    y_ptr,      # labels (B,)
    c_ptr,      # centers (C, D), any strides
    owner_ptr,  # (C,) int32, from claim
    sum_ptr,    # (B, D) ACC scratch, seeded: owners' rows += c_{y_i} - x_i of every other sample
    count_ptr,  # (B,) int32, seeded: owners' entries += 1 per other sample
    B, D,
    stride_xb, stride_xd, stride_y, stride_cc, stride_cd,
    ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # Reads B*i + B*4 + (B-U)*D*e (features) + (B-U)*D*e (center rows);
    # atomic read-modify-write of (B-U)*D ACC values and (B-U) counts.
    rows, row_ok, labels, owners = _sample_block(y_ptr, owner_ptr, B, stride_y, BLOCK_B)
    is_guest = row_ok & (owners != rows)
    rows64, owners64 = rows.to(tl.int64), owners.to(tl.int64)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        tile_ok = is_guest[:, None] & (cols < D)[None, :]
        x = tl.load(x_ptr + rows64[:, None] * stride_xb + cols[None, :] * stride_xd, mask=tile_ok).to(ACC)
        c = tl.load(c_ptr + labels[:, None] * stride_cc + cols[None, :] * stride_cd, mask=tile_ok).to(ACC)
        tl.atomic_add(sum_ptr + owners64[:, None] * D + cols[None, :], c - x, mask=tile_ok, sem="relaxed")
    tl.atomic_add(count_ptr + owners, tl.full((BLOCK_B,), 1, tl.int32), mask=is_guest, sem="relaxed")


@triton.jit
def step_rows_kernel(
    y_ptr,      # labels (B,)
    c_ptr,      # centers (C, D), any strides; read only
    owner_ptr,  # (C,) int32, from claim
    sum_ptr,    # (B, D) ACC scratch, accumulated: owners' rows become the new centers
    count_ptr,  # (B,) int32: owners' entries = n_j, the count of their label in the batch
    alpha_ptr,  # (1,) ACC: the rule's alpha
    bad_ptr,    # (1,) int32, zeroed: out, += number of new values not finite in the centers' dtype
    B, D,
    stride_y, stride_cc, stride_cd,
    PAPER: tl.constexpr,  # True: step alpha / (1 + n_j) (Eq. 4); False: step alpha (moving average)
    ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # Reads B*i + B*4 + a + U*4 + U*D*a (sums) + U*D*e (center rows); writes U*D*a; one 4-byte atomic per program.
    rows, row_ok, labels, owners = _sample_block(y_ptr, owner_ptr, B, stride_y, BLOCK_B)
    is_owner = row_ok & (owners == rows)
    rows64 = rows.to(tl.int64)
    alpha = tl.load(alpha_ptr)
    if PAPER:
        counts = tl.load(count_ptr + rows, mask=is_owner, other=0).to(ACC)
        step = alpha / (1.0 + counts)  # (BLOCK_B,)
    else:
        step = tl.zeros((BLOCK_B,), dtype=ACC) + alpha
    bad = tl.zeros((BLOCK_B, BLOCK_D), dtype=tl.int32)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        tile_ok = is_owner[:, None] & (cols < D)[None, :]
        sums = sum_ptr + rows64[:, None] * D + cols[None, :]
        c = tl.load(c_ptr + labels[:, None] * stride_cc + cols[None, :] * stride_cd, mask=tile_ok).to(ACC)
        new = c - step[:, None] * tl.load(sums, mask=tile_ok)
        stored = new.to(c_ptr.dtype.element_ty).to(ACC)  # what commit would write: overflow shows here
        finite = tl.abs(stored) < float("inf")  # false for inf and NaN
        bad += tl.where(tile_ok, 1 - finite.to(tl.int32), 0)
        tl.store(sums, new, mask=tile_ok)
    tl.atomic_add(bad_ptr, tl.sum(tl.sum(bad, axis=1), axis=0), sem="relaxed")


@triton.jit
def commit_rows_kernel(
    y_ptr,      # labels (B,)
    c_ptr,      # centers (C, D), any strides: out, owners' labelled rows = their new values
    owner_ptr,  # (C,) int32, from claim
    sum_ptr,    # (B, D) ACC: owners' rows hold the new centers
    bad_ptr,    # (1,) int32: nothing is written unless it is 0
    B, D,
    stride_y, stride_cc, stride_cd,
    BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # Reads 4, then, only when every new value is finite, B*i + B*4 + U*D*a; writes U*D*e.
    if tl.load(bad_ptr) == 0:
        rows, row_ok, labels, owners = _sample_block(y_ptr, owner_ptr, B, stride_y, BLOCK_B)
        is_owner = row_ok & (owners == rows)
        rows64 = rows.to(tl.int64)
        for d0 in range(0, D, BLOCK_D):
            cols = d0 + tl.arange(0, BLOCK_D)
            tile_ok = is_owner[:, None] & (cols < D)[None, :]
            new = tl.load(sum_ptr + rows64[:, None] * D + cols[None, :], mask=tile_ok)
            tl.store(c_ptr + labels[:, None] * stride_cc + cols[None, :] * stride_cd,
                     new.to(c_ptr.dtype.element_ty), mask=tile_ok)
