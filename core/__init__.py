"""webtensor.core: the op set, graph IR, autodiff, passes and kernel IR.

Nothing here imports numpy at module level; reference implementations import
it when they run (numpy is the oracle, optional in Pyodide).
"""
