"""Manifests for the schema checkers' tests: the JS fixture's manifest and systematic damage to it.

    python3 tests/python/schema_cases.py      # prints [[manifest, Python's verdict], ...] as JSON

Each case replaces one value of the manifest (every object entry and the first two items of each array, to depth 6) by a
value of another type, removes it, or adds an unknown entry; a verdict is None (valid) or the
:class:`webtensor.schema.SchemaError` message. ``js/test/schema.test.js`` checks the JS checker
gives the same verdicts, ``tests/python/test_schema.py`` checks them against ``jsonschema``.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REPLACEMENTS = [None, True, 0, 1, -1, 1.5, 2 ** 53, 1e300, "", "x", "__proto__", "../x", "1", [], [1], {}, {"a": 1}]


def fixture_manifest() -> dict:
    """The manifest of ``js/test/fixtures/make_fixtures.py``'s 'linear' artifact."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, os.path.join(ROOT, "js", "test", "fixtures", "make_fixtures.py"), out],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "linear", "manifest.json")) as f:
            return json.load(f)


def _paths(value, path=(), depth=6):
    yield path
    if depth == 0:
        return
    # every entry of objects, the first two items of arrays (the others are alike)
    items = value.items() if isinstance(value, dict) else enumerate(value[:2]) if isinstance(value, list) else ()
    for k, v in items:
        yield from _paths(v, path + (k,), depth - 1)


def _edit(doc, path, how):
    doc = copy.deepcopy(doc)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if how == "delete":
        del parent[path[-1]]
    elif how == "extra":
        target = parent[path[-1]]
        if not isinstance(target, dict):
            return None
        target["extra"] = 1
    else:
        parent[path[-1]] = how[1]
    return doc


def cases(manifest: dict) -> list[dict]:
    out = [manifest]
    for path in _paths(manifest):
        if not path:
            continue
        for how in ["delete", "extra"] + [("set", r) for r in REPLACEMENTS]:
            doc = _edit(manifest, path, how)
            if doc is not None:
                out.append(doc)
    for version in (1.0, "1", "\u0967", [1], True, 2, 1e30):
        out.append({**manifest, "format_version": version})
    for batch in ({"chunk": 8}, {"chunk": 8, "maximum": 9}, {"chunk": 0}, {"chunk": -1}, {"chunk": 2 ** 40},
                  {"chunk": 1.5}, {"chunk": "8"}, {"chunk": 8, "maximum": 0}, {"chunk": 8, "rows": 1}, {}, [8], None):
        doc = copy.deepcopy(manifest)     # format version 2's symbolic batch (docs/artifact.md)
        doc["format_version"] = 2
        doc["signatures"]["predict"]["batch"] = batch
        out.append(doc)
    for rows in ("__rows_predict", "a-b", "", 7, None, "r" * 129, ["x"]):
        doc = copy.deepcopy(manifest)     # run-time rows (docs/artifact.md "Run-time rows")
        doc["format_version"] = 2
        doc["signatures"]["predict"]["batch"] = {"chunk": 8}
        doc["signatures"]["predict"]["wasm"]["rows_driver"] = rows
        out.append(doc)
    for rows in ([1, 8, 1], [0, 8, 1], [1, 8], [1, 8, 1, 1], [2 ** 31, 1, 1], [1.5, 1, 1], ["1", 1, 1], [True, 1, 1],
                 "1,8,1", None, {}):
        doc = copy.deepcopy(manifest)     # WebGPU run-time rows (docs/artifact.md "Run-time rows: WebGPU")
        doc["format_version"] = 2
        doc["signatures"]["predict"]["batch"] = {"chunk": 8}
        doc["signatures"]["predict"]["webgpu"]["kernels"][0]["rows"] = rows
        out.append(doc)
    wasm_vars = manifest["signatures"]["predict"]["wasm"]["variables"]
    for key in ("\u00b2", "01", "-1", " 1", "1e0", "100000"):
        doc = copy.deepcopy(manifest)
        doc["signatures"]["predict"]["wasm"]["variables"] = {**wasm_vars, key: 1024}
        out.append(doc)
    for name in ("../x", "/etc/hostname", "a\\b", "http://127.0.0.1:1/x", "//127.0.0.1:1/x", "%2e%2e/x", "a/./b",
                 "a//b", "", ".hidden", "x" * 256, "kernels/\u0430.wgsl", "a\nb"):
        doc = copy.deepcopy(manifest)
        doc["files"][name] = {"bytes": 1, "sha256": "0" * 64}
        out.append(doc)
    return out


def verdicts(docs: list) -> list:
    sys.path.insert(0, ROOT)
    from webtensor.schema import SchemaError, artifact_schema, loads, validate
    out = []
    for doc in docs:
        doc = loads(json.dumps(doc))          # as a loader reads it (1e300 is an integer, as in JS)
        try:
            validate(doc, artifact_schema())
            out.append([doc, None])
        except SchemaError as e:
            out.append([doc, str(e)])
    return out


if __name__ == "__main__":
    json.dump(verdicts(cases(fixture_manifest())), sys.stdout)
