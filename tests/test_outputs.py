"""Strict JSON with a schema version, ranking.csv and provenance (unnas.outputs)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from unnas import outputs


def strict_loads(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_strict_loads_rejects_nan():
    with pytest.raises(ValueError):
        strict_loads('{"a": NaN}')


def test_dumps_writes_null_for_non_finite_numbers_and_plain_numpy_values():
    obj = {"a": math.nan, "b": [1.5, math.inf, -math.inf], "c": np.float32(0.5), "d": np.array([1.0, np.nan]),
           "e": np.int64(3)}
    assert strict_loads(outputs.dumps(obj)) == {"a": None, "b": [1.5, None, None], "c": 0.5, "d": [1.0, None], "e": 3}


def test_write_json_puts_schema_version_first(tmp_path):
    path = outputs.write_json(tmp_path / "x.json", {"value": math.nan, "schema_version": 99})
    data = strict_loads(path.read_text())
    assert list(data) == ["schema_version", "value"]
    assert data == {"schema_version": outputs.SCHEMA_VERSION, "value": None}
    assert not list(tmp_path.glob(".x.json.tmp*"))


def test_csv_text_one_row_per_item_empty_where_missing():
    rows = [{"a": 1, "b": math.nan}, {"a": 2, "c": [1, 2]}, {"b": None, "a": np.float64(0.25)}]
    assert outputs.csv_text(rows) == "a,b,c\n1,,\n2,,\"[1,2]\"\n0.25,,\n"


def test_provenance_names_versions_cpu_and_command(tmp_path):
    import platform

    import unnas

    first = outputs.write_provenance(tmp_path, device="cpu", command=["unnas", "rank", "--seed", "1"])
    outputs.write_provenance(tmp_path, device="cpu", command=["unnas", "rank"])
    data = strict_loads((tmp_path / "provenance.json").read_text())
    assert data["schema_version"] == outputs.SCHEMA_VERSION
    assert data["unnas"] == unnas.__version__ and data["python"] == platform.python_version()
    assert data["command"] == "unnas rank" and data["device"] == "cpu"
    assert data["cpu"] and isinstance(data["isa_flags"], list)
    assert [e["command"] for e in data["earlier"]] == [first["command"]] == ["unnas rank --seed 1"]


def test_git_commit_of_a_folder_outside_any_checkout_is_none(tmp_path):
    assert outputs.git_commit(tmp_path) is None
