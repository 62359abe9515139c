"""Published reference tables: CSV / JSON loading, canonical keys, every bad table one clear error."""

from __future__ import annotations

import json
import pickle

import pytest

from unnas.errors import UserError
from unnas.references import load_reference, structure_of
from unnas.spec import ArchSpec


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    return p


def test_csv_default_columns_and_percent_to_fraction(tmp_path):
    p = write(tmp_path, "t.csv", "structure,accuracy,params\n00000000,85.5,1\n22222222,93.0,2\n")
    ref = load_reference(p)
    assert ref.values == {"00000000": pytest.approx(0.855), "22222222": pytest.approx(0.93)}
    assert ref.value_name == "accuracy"


def test_csv_named_columns_and_fractions_kept(tmp_path):
    p = write(tmp_path, "t.csv", "arch_str,top1,other\n|a|,0.5,x\n|b|,0.75,y\n")
    ref = load_reference(p, key_column="arch_str", value_column="top1")
    assert ref.values == {"|a|": 0.5, "|b|": 0.75}


def test_json_macro_layout_reads_mean_acc(tmp_path):
    table = {"02012100": {"test_acc": [89.0, 89.5, 89.0], "mean_acc": 89.1666, "std": 0.2, "params": 1, "flops": 2},
             "11111221": {"test_acc": [92.0, 92.5, 92.5], "mean_acc": 92.3333, "std": 0.1, "params": 1, "flops": 2}}
    ref = load_reference(write(tmp_path, "m.json", json.dumps(table)))
    assert ref.value_name == "mean_acc"
    assert ref.values["02012100"] == pytest.approx(0.891666)
    # a list-valued field is averaged: test_acc of 02012100 = 89.1666...
    ref2 = load_reference(write(tmp_path, "m2.json", json.dumps(table)), value_column="test_acc")
    assert ref2.values["02012100"] == pytest.approx((89.0 + 89.5 + 89.0) / 300)


def test_json_flat_mapping(tmp_path):
    ref = load_reference(write(tmp_path, "f.json", '{"a": 0.1, "b": 0.9}'))
    assert ref.values == {"a": 0.1, "b": 0.9}


@pytest.mark.parametrize("name,content,words", [
    ("t.csv", "structure,accuracy\n00000000,85\n00000000,86\n", "duplicate key"),
    ("t.csv", "structure,accuracy\n00000000,nan\n", "nan"),
    ("t.csv", "structure,accuracy\n00000000,\n", "missing value"),
    ("t.csv", "structure,accuracy\n00000000,high\n", "not a number"),
    ("t.csv", "arch_name,score\n00000000,85\n", "no structure column"),
    ("t.csv", "structure,score\n00000000,85\n", "no accuracy column"),
    ("t.csv", "structure,accuracy\n", "empty table"),
    ("t.json", '{"a": 0.5, "a": 0.6}', "duplicate key"),
    ("t.json", '{"a": {"std": 0.5}}', "no accuracy field"),
    ("t.json", '{"a": NaN}', "nan"),
    ("t.json", '[1, 2]', "top level is a list"),
    ("t.json", '{"a": ', "not valid JSON"),
])
def test_bad_tables_are_one_clear_error(tmp_path, name, content, words):
    with pytest.raises(UserError) as e:
        load_reference(write(tmp_path, name, content))
    msg = str(e.value)
    assert msg.startswith("--reference: ") and words in msg and "\n" not in msg


def test_pickle_and_missing_file_refused(tmp_path):
    evil = write(tmp_path, "t.pkl", pickle.dumps({"00000000": 0.9}))
    with pytest.raises(UserError, match="pickle"):
        load_reference(evil)
    disguised = write(tmp_path, "t.csv", pickle.dumps({"00000000": 0.9}))
    with pytest.raises(UserError, match="pickle"):
        load_reference(disguised)
    with pytest.raises(UserError, match="file not found"):
        load_reference(tmp_path / "nope.csv")


def test_canonical_keys_malformed_and_lookup(tmp_path):
    ref = load_reference(write(tmp_path, "t.csv", "structure,accuracy\n00000000,80\n22222222,90\n"))
    canon = ref.canonical("macro")
    specs = [ArchSpec("macro", {"arch": "22222222", "width": 1.0}), ArchSpec("macro", {"arch": "00000000"})]
    assert canon.lookup(specs) == {specs[0].arch_id: pytest.approx(0.9), specs[1].arch_id: pytest.approx(0.8)}
    absent = ArchSpec("macro", {"arch": "11111111"})
    with pytest.raises(UserError, match=r"1 candidate\(s\) absent from the table: .*11111111"):
        canon.lookup(specs + [absent])
    bad = load_reference(write(tmp_path, "b.csv", "structure,accuracy\n0000000x,80\n"))
    with pytest.raises(UserError, match="malformed key '0000000x'"):
        bad.canonical("macro")


def test_structure_of_nb201_is_the_cell_string():
    cell = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"
    assert structure_of(ArchSpec("nb201", {"arch": cell})) == cell
