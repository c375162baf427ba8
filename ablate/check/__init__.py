"""Conformance of outside center-loss implementations against the float64 reference: `ablate check TARGET`.

    target          loading TARGET (a function, an nn.Module class, or a registered variant) and calling it
    suite           the checks (convention, gradients, edge cases, dtypes, bad input, timing) and their findings
    isolated        TARGET in a child process of its own: the calls, the timing and the training steps run there
    step            --step: a user's training step run on controlled batches, the centers read before and after
    update_fit      the centers' motion fitted against every update rule of the registry, by least squares
    update_verdict  the fit judged: rule, alpha, lambda, duplicates, absent classes, weight decay, momentum
    cli             the command
"""
