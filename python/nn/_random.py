"""The in-graph random numbers of layers (Dropout): :mod:`webtensor._graph_random`, where the hash
is documented (re-exported here for the layers)."""
from .._graph_random import _scramble, _shr, element_index, uniform  # noqa: F401
