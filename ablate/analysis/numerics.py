"""The bench numerics table's check: float32 errors against the float64 reference within FLOAT32_TOLERANCE."""

import pandas as pd

from ablate.runs.schema import ERROR_COLUMNS

# float32 has unit roundoff 6e-8; naive's cancellation amplifies it by ||x||^2 / ||x - c||^2 = 1 / spread^2
# (100 at the default spread 0.1), and sums over B*D terms add a few more ulps: under 1e-5. 1e-4 leaves
# a margin of 10 while still catching any real mistake, which gives errors of order one.
FLOAT32_TOLERANCE = 1e-4


def float32_failures(numerics: pd.DataFrame, tolerance: float = FLOAT32_TOLERANCE) -> pd.DataFrame:
    """The float32 rows whose loss or gradient error exceeds `tolerance` (or that could not run)."""
    f32 = numerics[numerics["dtype"] == "float32"]
    worst = f32[list(ERROR_COLUMNS)].max(axis=1, skipna=False)
    return f32[~(worst <= tolerance)]
