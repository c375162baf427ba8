"""Stable cell ids: a hash of the resolved config, the same on every machine and every run."""

import hashlib
import json

ID_LENGTH = 12  # hex digits: 48 bits, a collision is negligible for grids of millions of cells


def cell_id(config: dict) -> str:
    """The id of a resolved config (every option, as `expand` returns it), independent of key order."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:ID_LENGTH]
