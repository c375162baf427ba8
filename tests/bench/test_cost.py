"""The cost model: bytes per variant and mode, and the memory filter that keeps the GPU study in budget."""

from dataclasses import replace

import pytest
import torch

from ablate.bench.cost import bytes_moved, memory_skip_note
from ablate.bench.suites import DTYPES, SUITES, sweep_variants

H200_BYTES = 141e9


@pytest.mark.parametrize("variant", ["naive", "gather", "compiled"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_full_is_forward_plus_backward(variant, dtype):
    parts = [bytes_moved(variant, mode, 300, 70, 9, dtype) for mode in ("forward", "backward", "full")]
    assert parts[2] == parts[0] + parts[1] > 0


@pytest.mark.parametrize("mode", ["forward", "backward"])
def test_naive_traffic_grows_with_batch_times_classes_and_gather_does_not(mode):
    B, D, e = 256, 64, 4

    def moved(variant, classes):
        return bytes_moved(variant, mode, B, classes, D, torch.float32)

    naive_extra = moved("naive", 2000) - moved("naive", 1000)
    # Per extra (B, C) element, forward writes and reads back five float tensors (distances, addmm, mask,
    # masked, clamped); backward reads or writes seven (clamp, mask product, matmul and row-sum inputs).
    assert naive_extra >= (10 if mode == "forward" else 7) * e * B * 1000
    for variant in ("gather", "compiled"):
        assert moved(variant, 1000) == moved(variant, 2000)


def test_eager_gather_moves_more_than_one_pass_per_graph():
    for mode in ("forward", "full"):
        gather, compiled = (bytes_moved(v, mode, 512, 100, 128, torch.float32) for v in ("gather", "compiled"))
        assert gather > compiled


def test_update_traffic_follows_the_touched_rows_not_the_classes():
    few = bytes_moved("gather", "update", 1024, 10, 512, torch.float32)
    many = bytes_moved("gather", "update", 1024, 100_000, 512, torch.float32)
    more = bytes_moved("gather", "update", 1024, 1_000_000, 512, torch.float32)
    assert few < many  # 10 touched rows against about 1,019
    assert more / many < 1.01  # once nearly every sample has its own class, C no longer matters
    assert many < 100_000 * 512 * 4 / 4  # far below one pass over the (C, D) centers


def test_memory_filter_skips_only_the_naive_cells_an_h200_cannot_hold():
    suite = replace(SUITES.get("gpu"), variants=("naive", "gather", "compiled", "fused"))
    skipped = set()
    for sweep, point in suite.points():
        for variant in sweep_variants(suite, sweep):
            note = memory_skip_note(variant, point.mode, point.batch, point.classes, point.dim, DTYPES[point.dtype],
                                    suite.memory_fraction * H200_BYTES)
            if note:
                assert "over the memory budget" in note
                skipped.add((variant, point.batch, point.classes, point.dtype))
    # naive's (B, C) temporaries at B=65536, C=100000 are 26 GB each in float32; everything else fits.
    assert skipped == {("naive", 65536, 100_000, "float32")}
