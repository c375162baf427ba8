"""Which cells of a grid share one training (ablate.train.followers): cells at lambda 0, in one process, that differ
only in options inert there (ablate.train.config.INERT_AT_ZERO_LAMBDA: rule, convention, alpha, center space) train
the same model, so the first of them in grid order trains it and the others follow it with centers of their own.

    tasks = shared_tasks(pairs)    the tasks that train the (cell_id, config) pairs: a pair, or a lead whose config
                                   holds its followers (ablate.grid.execute.FOLLOWERS)
    sharing_text(tasks)            '50 cells at lambda 0 share the training of another cell'
"""

from ablate.grid.execute import FOLLOWERS, task_cells
from ablate.train.config import INERT_AT_ZERO_LAMBDA, shared_training_key


def shared_tasks(pairs: list) -> list:
    """The tasks that train `pairs` ((cell_id, config) in grid order), in the order of their first cells: a cell
    whose training an earlier one of them shares joins that one's task as a follower."""
    tasks: list = []
    leads: dict = {}  # shared-training key -> index of its task
    for cell_id, config in pairs:
        key = shared_training_key(config)
        if key is not None and key in leads:
            lead_id, lead = tasks[leads[key]]
            tasks[leads[key]] = (lead_id, {**lead, FOLLOWERS: [*lead.get(FOLLOWERS, []), (cell_id, config)]})
            continue
        if key is not None:
            leads[key] = len(tasks)
        tasks.append((cell_id, config))
    return tasks


def followers_count(tasks: list) -> int:
    """The cells of `tasks` that follow another's training."""
    return sum(len(task_cells(config)[1]) for _, config in tasks)


def sharing_text(tasks: list) -> str:
    """'50 cells at lambda 0 follow the training of another that differs from them only in rule, convention, alpha or
    center_space'; '' when none does."""
    following = followers_count(tasks)
    if not following:
        return ""
    return (f"{following} cell{'s' if following != 1 else ''} at lambda 0 share the training of another that differs "
            f"from {'them' if following != 1 else 'it'} only in {', '.join(INERT_AT_ZERO_LAMBDA[:-1])} or "
            f"{INERT_AT_ZERO_LAMBDA[-1]} (the model is the same; each keeps its own centers)")
