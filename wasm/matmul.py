"""The ``matmul`` template (stub until the micro-kernel lands)."""


def supports(kernel) -> bool:
    return False
