"""Conformance of outside center-loss implementations against the float64 reference: `ablate check TARGET`.

    target  loading TARGET (a function, an nn.Module class, or a registered variant) and calling it
    suite   the checks (convention, gradients, edge cases, dtypes, bad input, timing) and their findings
    cli     the command
"""
