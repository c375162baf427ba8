"""ablate: a benchmarking and ablation suite for Center Loss (Wen et al., ECCV 2016)."""

__version__ = "0.1.0"
