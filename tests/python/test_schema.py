"""docs/artifact.schema.json and its checker (python/schema.py): verdicts agree with the ``jsonschema``
library on thousands of damaged manifests, the JS copy of the schema is current, and JSON is read as
JavaScript reads it."""
import json
import os

import pytest

from schema_cases import ROOT, cases, fixture_manifest, verdicts
from webtensor import schema as S

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def judged():
    return verdicts(cases(fixture_manifest()))


def test_the_schema_is_a_valid_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(S.artifact_schema())


def test_verdicts_agree_with_jsonschema(judged):
    ref = jsonschema.Draft202012Validator(S.artifact_schema())
    valid = 0
    for doc, verdict in judged:
        errors = list(ref.iter_errors(doc))
        assert (verdict is None) == (not errors), (verdict, [e.message for e in errors][:3], json.dumps(doc)[:300])
        valid += verdict is None
    assert len(judged) > 2000 and 200 < valid < len(judged) - 1500    # both kinds are well represented


def test_exported_manifests_are_valid(tmp_path):
    """What webtensor.export writes (wasm and WebGPU sections of a real model) passes the schema."""
    import webtensor as wt
    wt.set_seed(0)
    m = wt.nn.Sequential([wt.nn.Input((4,)), wt.nn.Dense(8, activation="relu"), wt.nn.Dense(3)])
    m.compile(wt.optimizers.Adam(0.01), wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    manifest = m.export(tmp_path / "art", batch_size=4)
    S.validate(S.loads(json.dumps(manifest)), S.artifact_schema())
    jsonschema.validate(manifest, S.artifact_schema())


def test_js_schema_module_is_current():
    with open(os.path.join(ROOT, "js", "artifact_schema.js"), encoding="utf-8") as f:
        assert f.read() == S.js_module(S.artifact_schema()), \
            "js/artifact_schema.js is stale: python3 -m webtensor.schema --js > js/artifact_schema.js"
    with open(os.path.join(ROOT, "docs", "artifact.schema.json"), encoding="utf-8") as f:
        assert json.load(f) == S.artifact_schema()


@pytest.mark.parametrize("text, value", [
    ("1.0", 1), ("1e3", 1000), ("-0.0", 0), ("1.5", 1.5), ("1e400", float("inf")), ('{"a": 2.0}', {"a": 2}),
])
def test_numbers_read_as_javascript_reads_them(text, value):
    got = S.loads(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "[" * 100_000 + "]" * 100_000,
                                  "\ufeff{}", "{"])
def test_loads_refuses_what_json_parse_refuses(text):
    with pytest.raises(ValueError):
        S.loads(text)


@pytest.mark.parametrize("value, problem", [
    (True, "must be 1, got true"), ("1", 'must be 1, got "1"'), ([1], "must be 1, got [1]"), (2, "must be 1, got 2"),
])
def test_booleans_and_strings_are_not_numbers(value, problem):
    with pytest.raises(S.SchemaError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        S.validate({"format_version": value}, {"properties": {"format_version": {"const": 1}}})


def test_dollar_ends_the_string_as_in_ecma_262():
    s = {"type": "string", "pattern": "^[a-z]+$"}
    S.validate("abc", s)
    with pytest.raises(S.SchemaError):
        S.validate("abc\n", s)          # Python's re alone would accept this


def test_unknown_schema_keywords_are_refused():
    with pytest.raises(ValueError, match="not supported"):
        S.validate(1, {"multipleOf": 2})
