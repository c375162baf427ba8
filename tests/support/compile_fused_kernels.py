"""Compile every fused kernel for CUDA sm_90 (H100, H200) on a machine without a GPU.

Triton's interpreter runs code that its compiler rejects (and the reverse), so tests/kernels/test_fused.py
runs this script in a fresh process without TRITON_INTERPRET. Prints the number of kernels compiled.
"""

import os

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from ablate.kernels import loss_kernels, update_kernels
from ablate.kernels.fused import tile_for

KERNELS = (
    loss_kernels.center_loss_forward_kernel, loss_kernels.center_loss_backward_kernel,
    update_kernels.claim_rows_kernel, update_kernels.seed_rows_kernel, update_kernels.accumulate_rows_kernel,
    update_kernels.step_rows_kernel, update_kernels.commit_rows_kernel,
)
INPUT_DTYPE_POINTERS = {"x_ptr", "c_ptr", "diff_ptr", "gx_ptr"}
INTEGER_POINTERS = {"y_ptr": "*i64", "owner_ptr": "*i32", "count_ptr": "*i32", "bad_ptr": "*i32"}
# (input dtype, accumulation dtype, D, value of every boolean flag such as SAVE_DIFF or PAPER):
# a half type, both accumulation types, D below, at and off the tile, each branch of every flag.
CONFIGS = (("bf16", tl.float32, 512, True), ("fp32", tl.float32, 2, False), ("fp64", tl.float64, 131, True))


def signature_of(kernel, input_dtype: str, acc, tile, flags: bool) -> tuple:
    """Triton's (signature, constexprs) for `kernel`: pointer types by argument name, scalars i32."""
    acc_pointer = "*fp64" if acc == tl.float64 else "*fp32"
    values = {"ACC": acc, "BLOCK_B": tile.block_b, "BLOCK_D": tile.block_d}
    signature, constexprs = {}, {}
    for index, param in enumerate(kernel.params):
        if param.is_constexpr:
            signature[param.name] = "constexpr"
            constexprs[(index,)] = values.get(param.name, flags)
        elif param.name in INPUT_DTYPE_POINTERS:
            signature[param.name] = "*" + input_dtype
        elif param.name.endswith("_ptr"):
            signature[param.name] = INTEGER_POINTERS.get(param.name, acc_pointer)
        else:
            signature[param.name] = "i32"
    return signature, constexprs


def main() -> int:
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise SystemExit("run without TRITON_INTERPRET=1: the interpreter does not compile")
    compiled = 0
    for input_dtype, acc, dim, flags in CONFIGS:
        tile = tile_for(dim)
        for kernel in KERNELS:
            signature, constexprs = signature_of(kernel, input_dtype, acc, tile, flags)
            triton.compile(ASTSource(kernel, signature, constexprs), target=GPUTarget("cuda", 90, 32),
                           options={"num_warps": tile.num_warps})
            compiled += 1
    return compiled


if __name__ == "__main__":
    print(main())
