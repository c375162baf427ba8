"""The analysis layer: run folders read and checked, and what is computed from them, on arrays and tables.

    schema     the run folder's layout, declared once: file names, kinds, the schema version, statuses, columns
    manifest   run.json: the kind of run a folder holds and its schema version (refused when newer); the writer lock
    readers    checked readers of the folder's JSON files, parquet tables and grid spec
    features   checked reader of a cell's test features (.npz)
    tables     the grid's results and curves tables, built from the cell records and read back
    summary    mean and 95% t-interval over seeds: the summary table and its text
    stats      one metric compared between two sides over seeds (compare_sides), power, the effect of interest
    outcomes   whether a cell trained, diverged or did not learn; rates with exact intervals, exact comparisons
    configs    which config keys vary, and how a setting is written
    runs       a run folder loaded whole: GridRun, BenchRun, DistributedRun
    findings   every setting against a reference setting, adjusted over its family, said in words
    objective_findings   every objective ranked and tested against the best, with its failures; every objective
               against a reference objective, and center loss added to each
    family     the report's one confirmatory family, adjusted over its grid runs, and its declaration
    numerics   the bench numerics table's float32 check

Nothing here imports torch or the layers above (train, grid, bench, distributed, report): reading a run folder
never loads the training stack.
"""
