"""A JSON Schema checker for the keywords ``docs/artifact.schema.json`` uses, and a strict JSON reader.

The artifact loaders check every manifest against that one schema before using any field; the JS
runtime has the same checker (``js/schema.js``), with the same messages. Supported keywords
(JSON Schema 2020-12, https://json-schema.org/draft/2020-12/json-schema-validation):
``type``, ``const``, ``enum``, ``properties``, ``required``, ``additionalProperties``,
``propertyNames``, ``minProperties``/``maxProperties``, ``items``, ``minItems``/``maxItems``,
``minimum``/``maximum``, ``maxLength``, ``pattern`` and ``$ref`` to ``#/$defs/<name>``; any other
keyword in the schema is an error (so the schema cannot silently ask for a check nobody does).
The test suite cross-checks the verdicts with the ``jsonschema`` library.

JSON values are compared as JavaScript sees them: ``true`` is not ``1``, and a number with an
integral value (``1.0``, ``1e3``) is an integer (:func:`loads` reads it as an ``int``).
"""
from __future__ import annotations

import json
import re

_KEYWORDS = {"$schema", "$id", "$defs", "title", "description", "type", "const", "enum", "properties",
             "required", "additionalProperties", "propertyNames", "minProperties", "maxProperties", "items",
             "minItems", "maxItems", "minimum", "maximum", "maxLength", "pattern", "$ref"}
_PATTERNS: dict[str, re.Pattern] = {}
_PLAIN = re.compile(r"[A-Za-z0-9_/-][A-Za-z0-9_./-]{0,63}\Z")     # keys shown as they are in paths


class SchemaError(ValueError):
    """A JSON value that does not match the schema; ``path`` is where (``signatures.predict.inputs[0]``)."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path or '(the document)'}: {problem}")
        self.path, self.problem = path, problem


def _number(text: str):
    """JSON numbers as JavaScript reads them: integral values are ints, others floats."""
    f = float(text)
    return int(f) if f.is_integer() else f


def loads(text: str, object_pairs_hook=None):
    """``json.loads`` with :func:`_number` for every non-integer literal; NaN/Infinity literals refused.
    Raises ValueError (also for nesting too deep to parse)."""
    def constant(name):
        raise ValueError(f"{name} is not JSON")
    try:
        return json.loads(text, parse_float=_number, parse_constant=constant, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _ecma(pattern: str) -> re.Pattern:
    """An ECMA-262 pattern (JSON Schema's dialect) as a Python regex: ``$`` ends the string (Python's
    ``$`` also matches before a final newline); classes in the schema are ASCII-only."""
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(re.sub(r"(?<!\\)\$$", r"\\Z", pattern), re.ASCII)
    return _PATTERNS[pattern]


_TYPES = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
          dict: "object"}


def _type_of(v) -> str:
    return _TYPES.get(type(v)) or type(v).__name__


def _same(a, b) -> bool:
    return _type_of(a) == _type_of(b) and a == b


def _show(v) -> str:
    """``v`` as JSON.stringify writes it (ints from 1e21 in exponent form), cut to 40 characters."""
    if _type_of(v) == "integer" and abs(v) >= 10 ** 21:
        text = repr(float(v))
    else:
        text = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


class _Mismatch(Exception):
    """Raised inside a compiled check; each enclosing array or object adds its path segment."""

    def __init__(self, problem: str):
        self.problem, self.segments = problem, []


def _key(key: str) -> str:
    return key if _PLAIN.match(key) else _show(key)


_PY_TYPES = {"null": {type(None)}, "boolean": {bool}, "integer": {int}, "number": {int, float}, "string": {str},
             "array": {list}, "object": {dict}}


def _compile(node: dict, root: dict, memo: dict):
    """``node`` as one function of a value raising :class:`_Mismatch`, compiled once per schema (one
    call per value checked: a manifest of thousands of entries takes about a millisecond)."""
    if id(node) in memo:
        return memo[id(node)]
    unknown = set(node) - _KEYWORDS
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} are not supported")
    ref = node.get("$ref")
    if ref is not None and not ref.startswith("#/$defs/"):
        raise ValueError(f"schema: unsupported $ref {ref!r}")
    target = root["$defs"][ref[len("#/$defs/"):]] if ref is not None else None
    want = node.get("type")
    types = _PY_TYPES[want] if want is not None else None
    article = "an" if want and want[0] in "aeiou" else "a"
    has_const, const, enum = "const" in node, node.get("const"), node.get("enum")
    lo, hi = node.get("minimum"), node.get("maximum")
    longest, pattern = node.get("maxLength"), node.get("pattern")
    regex = _ecma(pattern) if pattern is not None else None
    fewest, most = node.get("minItems"), node.get("maxItems")
    item = _compile(node["items"], root, memo) if "items" in node else None
    fewest_keys, most_keys, required = node.get("minProperties"), node.get("maxProperties"), node.get("required", ())
    props = {k: _compile(v, root, memo) for k, v in node.get("properties", {}).items()}
    extra = node.get("additionalProperties")
    extra = _compile(extra, root, memo) if isinstance(extra, dict) else extra
    names = _compile(node["propertyNames"], root, memo) if "propertyNames" in node else None
    resolved = []                       # the $ref target's function, compiled on first use (cycles)

    def check(v):
        if target is not None:
            if not resolved:
                resolved.append(_compile(target, root, memo))
            resolved[0](v)
        t = type(v)
        if types is not None and t not in types:
            raise _Mismatch(f"must be {article} {want}, got {_show(v)}")
        if has_const and not _same(v, const):
            raise _Mismatch(f"must be {_show(const)}, got {_show(v)}")
        if enum is not None and not any(_same(v, e) for e in enum):
            raise _Mismatch(f"must be one of {', '.join(map(_show, enum))}, got {_show(v)}")
        if t is int or t is float:
            if lo is not None and v < lo:
                raise _Mismatch(f"must be at least {lo}, got {_show(v)}")
            if hi is not None and v > hi:
                raise _Mismatch(f"must be at most {hi}, got {_show(v)}")
        elif t is str:
            if longest is not None and len(v) > longest:
                raise _Mismatch(f"must be at most {longest} characters long")
            if regex is not None and not regex.search(v):
                raise _Mismatch(f"{_show(v)} does not match {pattern}")
        elif t is list:
            if fewest is not None and len(v) < fewest:
                raise _Mismatch(f"must have at least {fewest} items, got {len(v)}")
            if most is not None and len(v) > most:
                raise _Mismatch(f"must have at most {most} items, got {len(v)}")
            if item is not None:
                for i, x in enumerate(v):
                    try:
                        item(x)
                    except _Mismatch as e:
                        e.segments.append(f"[{i}]")
                        raise
        elif t is dict:
            if fewest_keys is not None and len(v) < fewest_keys:
                raise _Mismatch(f"must have at least {fewest_keys} entries, got {len(v)}")
            if most_keys is not None and len(v) > most_keys:
                raise _Mismatch(f"must have at most {most_keys} entries, got {len(v)}")
            for key in required:
                if key not in v:
                    raise _Mismatch(f"{json.dumps(key)} is missing")
            for key, x in v.items():
                if names is not None:
                    try:
                        names(key)
                    except _Mismatch as e:
                        e.segments += [" (name)", f".{_key(key)}"]
                        raise
                sub = props.get(key)
                if sub is None:
                    if extra is False:
                        raise _Mismatch(f"unknown entry {_show(key)}")
                    sub = extra if extra is not True else None
                if sub is not None:
                    try:
                        sub(x)
                    except _Mismatch as e:
                        e.segments.append(f".{_key(key)}")
                        raise
    memo[id(node)] = check
    return check


_COMPILED: dict[int, tuple[dict, object]] = {}


def validate(value, schema: dict) -> None:
    """Check ``value`` against ``schema`` (compiled on first use and cached). Raises
    :class:`SchemaError` at the first mismatch (depth-first, object keys in document order), and
    ValueError for a schema keyword this checker does not implement."""
    entry = _COMPILED.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _COMPILED[id(schema)] = (schema, _compile(schema, schema, {}))
    try:
        entry[1](value)
    except _Mismatch as e:
        raise SchemaError("".join(reversed(e.segments)).lstrip("."), e.problem) from None


_ARTIFACT_SCHEMA: dict | None = None


def artifact_schema() -> dict:
    """``docs/artifact.schema.json``: the artifact manifest's schema (installed beside this module)."""
    global _ARTIFACT_SCHEMA
    if _ARTIFACT_SCHEMA is None:
        import os
        with open(os.path.join(os.path.dirname(__file__), "artifact.schema.json"), encoding="utf-8") as f:
            _ARTIFACT_SCHEMA = json.load(f)
    return _ARTIFACT_SCHEMA


def js_module(schema: dict) -> str:
    """The schema as the JS runtime's ``js/artifact_schema.js`` (a test checks that file is current)."""
    return ("// docs/artifact.schema.json as a module (browsers cannot import JSON everywhere yet).\n"
            "// Generated: python3 -m webtensor.schema --js > js/artifact_schema.js; a test checks it is current.\n"
            f"export default {json.dumps(schema, indent=1)};\n")


if __name__ == "__main__":
    import sys
    if sys.argv[1:] != ["--js"]:
        sys.exit("usage: python3 -m webtensor.schema --js > js/artifact_schema.js")
    sys.stdout.write(js_module(artifact_schema()))
