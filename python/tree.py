"""Nested structures of tensors (the role of ``tf.nest`` / ``jax.tree_util``).

``flatten`` turns a nest of tuples, lists, namedtuples and dicts into a list of leaves and a
hashable structure description; ``unflatten`` rebuilds the nest from that description and new
leaves.  ``webtensor.function`` keys its trace cache on the structure; ``data.Dataset`` uses it
for elements.  Dict keys are taken in sorted order where they sort (as ``tf.nest`` does), so
``{"a", "b"}`` and ``{"b", "a"}`` describe the same structure.
"""

from __future__ import annotations


def flatten(tree, leaves: list, lists_are_leaves: bool = False):
    """Append ``tree``'s leaves to ``leaves`` (depth first); return its structure.

    ``None`` in the structure marks a leaf.  With ``lists_are_leaves`` a Python list is one leaf
    (``Dataset.from_tensor_slices([[1, 2], [3, 4]])`` slices one tensor, as in tf.data).
    """
    if isinstance(tree, dict):
        try:
            keys = tuple(sorted(tree))
        except TypeError:           # keys of mixed types: keep insertion order
            keys = tuple(tree)
        return ("dict", keys, tuple(flatten(tree[k], leaves, lists_are_leaves) for k in keys))
    if isinstance(tree, tuple) or (isinstance(tree, list) and not lists_are_leaves):
        return ("seq", type(tree), tuple(flatten(t, leaves, lists_are_leaves) for t in tree))
    leaves.append(tree)
    return None


def unflatten(struct, it):
    """Rebuild the nest described by ``struct`` (from ``flatten``), taking leaves from iterator ``it``."""
    if struct is None:
        return next(it)
    kind, meta, children = struct
    if kind == "dict":
        return {k: unflatten(s, it) for k, s in zip(meta, children)}
    items = [unflatten(s, it) for s in children]
    if hasattr(meta, "_fields"):    # a namedtuple keeps its type
        return meta(*items)
    return list(items) if issubclass(meta, list) else tuple(items)


def map_structure(fn, tree):
    """``tree`` with every leaf replaced by ``fn(leaf)`` (``tf.nest.map_structure`` for one tree)."""
    leaves: list = []
    struct = flatten(tree, leaves)
    return unflatten(struct, iter([fn(v) for v in leaves]))
