"""The floating dtypes the center loss computes in, by the name a user types: the one list that the input checks,
the bench's suites and options and the distributed bench read."""

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
