"""`ablate tune`: each objective of a grid searched on validation data with one budget, then scored on test.

    settings   the [tune] table (budget, metric, seeds, pruning, narrowed ranges), checked
    space      the objectives of a grid and each one's search space, from the registries
    trials     a trial where a worker runs it: a cell without its test split, pruned epoch by epoch
    search     the studies (Optuna, in the run folder's journal), their rounds of trials, resume, the final seeds
    cli        the command
"""
