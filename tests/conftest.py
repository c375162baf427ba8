import os

# Triton kernels run on the CPU through Triton's interpreter; it must be chosen before Triton
# compiles anything, so it is set before any test module imports the kernels.
os.environ.setdefault("TRITON_INTERPRET", "1")
