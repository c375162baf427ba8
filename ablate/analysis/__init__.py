"""The analysis layer: statistics and findings computed from loaded runs (ablate.runs), on arrays and tables.

    stats      one metric compared between two sides over seeds (compare_sides), power, the effect of interest
    outcomes   whether a cell trained, diverged or did not learn; rates with exact intervals, exact comparisons
    findings   every setting against a reference setting, adjusted over its family, said in words
    objective_findings   every objective ranked and tested against the best, with its failures; every objective
               against a reference objective, and center loss added to each
    family     the report's one confirmatory family, adjusted over its grid runs, and its declaration
    numerics   the bench numerics table's float32 check

Nothing here imports torch, a layer above (train, grid, bench, distributed, report) or a module that writes a run
folder (import-linter's contract in pyproject.toml): the run folder is read through ablate.runs's readers.
"""
