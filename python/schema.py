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


def loads(text: str):
    """``json.loads`` with :func:`_number` for every non-integer literal; NaN/Infinity literals refused.
    Raises ValueError (also for nesting too deep to parse)."""
    def constant(name):
        raise ValueError(f"{name} is not JSON")
    try:
        return json.loads(text, parse_float=_number, parse_constant=constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _ecma(pattern: str) -> re.Pattern:
    """An ECMA-262 pattern (JSON Schema's dialect) as a Python regex: ``$`` ends the string (Python's
    ``$`` also matches before a final newline); classes in the schema are ASCII-only."""
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(re.sub(r"(?<!\\)\$$", r"\\Z", pattern), re.ASCII)
    return _PATTERNS[pattern]


def _type_of(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(v), type(v).__name__)


def _same(a, b) -> bool:
    return _type_of(a) == _type_of(b) and a == b


def _show(v) -> str:
    """``v`` as JSON.stringify writes it (ints from 1e21 in exponent form), cut to 40 characters."""
    if _type_of(v) == "integer" and abs(v) >= 10 ** 21:
        text = repr(float(v))
    else:
        text = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(value, schema: dict, root: dict | None = None, path: str = "") -> None:
    """Check ``value`` against ``schema`` (``root`` resolves ``$ref``). Raises :class:`SchemaError` at
    the first mismatch (depth-first, object keys in document order)."""
    root = schema if root is None else root
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} are not supported")
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"schema: unsupported $ref {ref!r}")
        validate(value, root["$defs"][ref[len("#/$defs/"):]], root, path)
    kind = _type_of(value)

    def fail(problem):
        raise SchemaError(path, problem)
    if "type" in schema:
        want = schema["type"]
        if not (kind == want or (want == "number" and kind == "integer")):
            fail(f"must be {'an' if want[0] in 'aeiou' else 'a'} {want}, got {_show(value)}")
    if "const" in schema and not _same(value, schema["const"]):
        fail(f"must be {_show(schema['const'])}, got {_show(value)}")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        fail(f"must be one of {', '.join(map(_show, schema['enum']))}, got {_show(value)}")
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            fail(f"must be at least {schema['minimum']}, got {_show(value)}")
        if "maximum" in schema and value > schema["maximum"]:
            fail(f"must be at most {schema['maximum']}, got {_show(value)}")
    elif kind == "string":
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            fail(f"must be at most {schema['maxLength']} characters long")
        if "pattern" in schema and not _ecma(schema["pattern"]).search(value):
            fail(f"{_show(value)} does not match {schema['pattern']}")
    elif kind == "array":
        if "minItems" in schema and len(value) < schema["minItems"]:
            fail(f"must have at least {schema['minItems']} items, got {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            fail(f"must have at most {schema['maxItems']} items, got {len(value)}")
        if "items" in schema:
            for i, item in enumerate(value):
                validate(item, schema["items"], root, f"{path}[{i}]")
    elif kind == "object":
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            fail(f"must have at least {schema['minProperties']} entries, got {len(value)}")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            fail(f"must have at most {schema['maxProperties']} entries, got {len(value)}")
        for key in schema.get("required", ()):
            if key not in value:
                fail(f"{json.dumps(key)} is missing")
        props = schema.get("properties", {})
        for key, item in value.items():
            seg = key if _PLAIN.match(key) else _show(key)
            at = f"{path}.{seg}" if path else seg
            if "propertyNames" in schema:
                validate(key, schema["propertyNames"], root, f"{at} (name)")
            if key in props:
                validate(item, props[key], root, at)
            elif schema.get("additionalProperties") is False:
                fail(f"unknown entry {_show(key)}")
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(item, schema["additionalProperties"], root, at)


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
