"""Run-time rows dispatches (docs/artifact.md "Run-time rows: WebGPU"): ``(rows, "rows" formula,
the chunk's dispatch, the dispatch for rows)``, checked by tests/python/test_export_symbolic.py and
(printed as JSON: ``python3 tests/python/webgpu_rows_cases.py``) by js/test/exported_symbolic.test.js."""
import json

CASES = [
    (1, (676, 256, 1), (85, 1, 1), (3, 1, 1)),          # 676 elements a row, 256 a workgroup
    (32, (676, 256, 1), (85, 1, 1), (85, 1, 1)),        # the whole chunk: its own dispatch
    (1, (1, 32, 5), (5, 1, 1), (5, 1, 1)),              # one row tile, all 5 of its K chunks
    (33, (1, 1, 1), (10, 5, 1), (10, 4, 1)),            # past x: rows of x, x kept
    (5, (1, 1, 1), (10, 5, 1), (5, 1, 1)),
    (41, (3, 1, 1), (10, 5, 3), (10, 5, 3)),            # 123 workgroups: x * y = 50, then z
    (21, (3, 1, 1), (10, 5, 3), (10, 5, 2)),            # 63
    (7, (2, 1, 1), (65535, 2, 1), (14, 1, 1)),
]

if __name__ == "__main__":
    print(json.dumps(CASES))
