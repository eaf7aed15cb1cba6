"""One lookup for ``losses.get``, ``metrics.get``, ``initializers.get``, ``activations.get`` and
``optimizers.get``, with the semantics of ``keras.<module>.get``:

- an instance of ``base`` is returned as is;
- a subclass of ``base`` is instantiated with no arguments;
- a string is looked up in the table by name, then (``snake=True``) by its snake_case form
  (``'MeanSquaredError'`` -> ``'mean_squared_error'``) or (``lower=True``) lowercased, and the
  entry is built by ``make(entry, name)`` (default: ``entry()``);
- any other callable goes through ``wrap`` (default: returned as is);
- anything else is a TypeError.

An unknown name raises ``ValueError: unknown <kind> 'name'; known: [...]``, listing every name
the table accepts.
"""
from __future__ import annotations

from typing import Any, Callable


def snake_case(name: str) -> str:
    """``'Conv2D'`` -> ``'conv2d'``, ``'LayerNormalization'`` -> ``'layer_normalization'``."""
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (name[i - 1].islower() or (i + 1 < len(name) and name[i + 1].islower()
                                                            and name[i - 1].isupper())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class Registry:
    """A name -> entry table for one kind of object (``'loss'``, ``'metric'`` ...).

    Args:
        kind: the word used in errors.
        table: name -> entry (a class, or a function for activations).
        base: the class whose instances are returned as is and whose subclasses are instantiated.
        make: ``(entry, name) -> object`` for a string; default ``entry()``.
        wrap: ``callable -> object`` for a plain callable; default: the callable itself.
            ``False``: callables are refused (TypeError).
        snake: also accept the snake_case form of a class name.
        lower: match names case-insensitively.
        extra_names: names handled by the caller before the registry (listed in errors).
    """

    def __init__(self, kind: str, table: dict, *, base: type | None = None,
                 make: Callable[[Any, str], Any] | None = None, wrap: Callable | None | bool = None,
                 snake: bool = False, lower: bool = False, extra_names=()):
        self.kind, self.table, self.base = kind, table, base
        self.make = make or (lambda entry, name: entry())
        self.wrap, self.snake, self.lower = wrap, snake, lower
        self.extra_names = tuple(extra_names)

    def names(self) -> list[str]:
        """Every accepted name, sorted."""
        return sorted(set(self.table) | set(self.extra_names))

    def key(self, name: str) -> str | None:
        """The table key for ``name``, or None."""
        if name in self.table:
            return name
        if self.lower and name.lower() in self.table:
            return name.lower()
        if self.snake:
            if snake_case(name) in self.table:
                return snake_case(name)
        return None

    def get(self, identifier):
        """The object for ``identifier`` (see the module docstring).

        Raises:
            ValueError: an unknown name, listing the known ones.
            TypeError: an identifier of another type.
        """
        base = self.base
        if base is not None and isinstance(identifier, base):
            return identifier
        if base is not None and isinstance(identifier, type) and issubclass(identifier, base):
            return identifier()
        if isinstance(identifier, str):
            key = self.key(identifier)
            if key is None:
                raise ValueError(f"unknown {self.kind} {identifier!r}; known: {self.names()}")
            return self.make(self.table[key], identifier)
        if callable(identifier) and self.wrap is not False:
            return identifier if self.wrap is None else self.wrap(identifier)
        kinds = ["a name"] + ([_a(base.__name__)] if base is not None else []) + \
            (["a callable"] if self.wrap is not False else [])
        raise TypeError(f"cannot interpret {identifier!r} as {_a(self.kind)}: expected "
                        f"{', '.join(kinds[:-1])} or {kinds[-1]}")


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def exports(namespace: dict) -> tuple[list[str], Callable[[], list[str]]]:
    """``(__all__, __dir__)`` for a module: the public names it defines itself (not those it
    imports), so ``dir(webtensor.nn.losses)`` shows the API and not ``F``, ``Tensor``, ``annotations``.

        __all__, __dir__ = exports(globals())
    """
    mod = namespace["__name__"]
    names = sorted(n for n, v in namespace.items()
                   if not n.startswith("_") and getattr(v, "__module__", None) == mod)
    return names, lambda: list(names)
