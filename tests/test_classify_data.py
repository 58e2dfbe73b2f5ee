"""Labelled-sequence data: file readers, checks with named errors, labels, scaling, splits, bucketing."""

import numpy as np
import pytest

from seqlab.data.preprocess import Standardizer
from seqlab.data.sequences import (
    Buckets,
    Labels,
    by_length,
    fix_missing,
    pad,
    series_from_arrays,
    stratified_split,
)
from seqlab.data.tables import Columns, read_table
from seqlab.data.text import DataError


# ------------------------------------------------------------------------------------------------ arrays
def test_aeon_conventions_become_time_first_series():
    X = np.arange(2 * 3 * 5, dtype=np.float64).reshape(2, 3, 5)  # (n, C, T)
    series, names = series_from_arrays(X)
    assert [s.shape for s in series] == [(5, 3), (5, 3)]
    assert np.array_equal(series[1], X[1].T) and series[0].dtype == np.float32
    uni, _ = series_from_arrays(np.ones((4, 7)))  # (n, T): univariate
    assert uni[0].shape == (7, 1)
    ragged, _ = series_from_arrays([np.ones((2, 3)), np.ones((2, 9))])  # unequal lengths, as a list
    assert [s.shape for s in ragged] == [(3, 2), (9, 2)]
    assert series_from_arrays([np.arange(4.0)])[0][0].shape == (4, 1)  # 1-D items are univariate
    assert names == ["series 0 of X", "series 1 of X"]


@pytest.mark.parametrize(
    "X, message",
    [
        ([np.ones((2, 3)), np.ones((3, 3))], "series 1 of X: 3 channels, expected 2"),
        ([np.ones((2, 3)), np.ones((2, 0))], "series 1 of X: empty sequence"),
        ([[1.0, 2.0], [[1.0], [2.0, 3.0]]], "series 1 of X: not numeric, or its rows have different lengths"),
        ([], "no sequences"),
        (np.ones((2, 2, 2, 2)), "expected an array (n, channels, length)"),
    ],
)
def test_bad_arrays_are_named(X, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        series_from_arrays(X)


def test_missing_values_are_refused_with_their_place_or_interpolated():
    s = np.array([[1.0, 0.0], [np.nan, 1.0], [3.0, np.inf], [5.0, 3.0]], dtype=np.float32)
    with pytest.raises(DataError, match=r"series 7: nan at time step 1, channel 0 \(pass --missing impute"):
        fix_missing([s], ["series 7"], "refuse")
    (fixed,) = fix_missing([s], ["series 7"], "impute")
    assert np.allclose(fixed[:, 0], [1, 2, 3, 5]) and np.allclose(fixed[:, 1], [0, 1, 2, 3])
    edge = np.array([[np.nan], [2.0], [np.nan]], dtype=np.float32)
    assert np.allclose(fix_missing([edge], ["e"], "impute")[0][:, 0], [2, 2, 2])  # edges held flat
    with pytest.raises(DataError, match="channel 0 has no finite value"):
        fix_missing([np.full((3, 1), np.nan, np.float32)], ["s"], "impute")
    assert fix_missing([s[:1]], ["ok"], "refuse")[0] is not None  # finite series pass untouched


def test_labels_of_any_type_round_trip_and_unknown_labels_are_named():
    for y in (["b", "a", "c", "a"], [3, 1, 2, 1], [True, False, True, False], [0.5, 1.5, 0.5, 2.5]):
        labels = Labels.fit(y)
        index = labels.encode(y, [f"row {i}" for i in range(len(y))])
        assert list(labels.decode(index)) == list(y)
        assert list(labels.classes) == sorted(set(y))
    labels = Labels.fit(["neg", "pos"])
    with pytest.raises(DataError, match="row 1: label 'meh' was never seen in training"):
        labels.encode(["pos", "meh"], ["row 0", "row 1"])
    with pytest.raises(DataError, match="at least two classes, found only \\['x'\\]"):
        Labels.fit(["x", "x"])
    assert list(Labels(Labels.fit([1, 2]).classes.tolist()).encode([2, 1], ["a", "b"])) == [1, 0]  # via JSON lists


def test_standardizer_uses_every_valid_step_of_the_training_series():
    rng = np.random.default_rng(0)
    series = [rng.normal(3, 2, (n, 2)).astype(np.float32) for n in (5, 50, 7)]
    series[0][:, 1] = 4.0
    scale = Standardizer.fit(series)
    steps = np.concatenate(series)
    assert np.allclose(scale.mean, steps.mean(0)) and np.isclose(scale.std[0], steps[:, 0].std(), rtol=1e-5)
    out = np.concatenate(scale(series))
    assert np.allclose(out.mean(0), 0, atol=1e-5) and np.isclose(out[:, 0].std(), 1, atol=1e-4)
    const = Standardizer.fit([np.full((4, 1), 7.0, np.float32)])
    assert np.allclose(const([np.full((2, 1), 7.0, np.float32)])[0], 0)  # a constant channel is centred, not blown up


def test_stratified_split_holds_out_each_class_in_proportion():
    y = np.array([0] * 50 + [1] * 20 + [2] * 2 + [3])
    train, val = stratified_split(y, 0.2, seed=1)
    assert len(np.intersect1d(train, val)) == 0 and sorted([*train, *val]) == list(range(len(y)))
    assert [int((y[val] == k).sum()) for k in range(4)] == [10, 4, 1, 0]  # never a class's last member
    again, _ = stratified_split(y, 0.2, seed=1)
    assert np.array_equal(train, again)
    assert len(stratified_split(y, 0.0, 0)[1]) == 0
    with pytest.raises(DataError, match="validation fraction"):
        stratified_split(y, 1.0, 0)


def test_buckets_cover_every_sequence_once_per_epoch_pad_little_and_depend_on_the_step_only():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 500, 1000)
    buckets = Buckets(lengths, batch=32, seed=3, pool=10)
    for epoch in range(2):
        seen = np.concatenate([buckets(epoch * buckets.per_epoch + k) for k in range(buckets.per_epoch)])
        assert sorted(seen.tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() - lengths[b].sum() for b in (buckets(k) for k in range(buckets.per_epoch)))
    shuffled = rng.permutation(1000)
    random = sum(32 * lengths[b].max() - lengths[b].sum() for b in np.array_split(shuffled, 1000 // 32))
    assert padded < 0.2 * random
    fresh = Buckets(lengths, batch=32, seed=3, pool=10)
    assert np.array_equal(fresh(buckets.per_epoch + 5), buckets(buckets.per_epoch + 5))  # resumed mid-epoch
    assert not np.array_equal(buckets(0), buckets(buckets.per_epoch))  # epochs differ


def test_pad_and_by_length():
    x, lengths = pad([np.ones((2, 3), np.float32), np.full((4, 3), 2, np.float32)])
    assert x.shape == (2, 4, 3) and lengths.tolist() == [2, 4] and x[0, 2:].abs().sum() == 0
    ids, _ = pad([np.array([5, 6]), np.array([7])])
    assert ids.tolist() == [[5, 6], [7, 0]]
    batches = by_length(np.array([3, 9, 1, 9, 4]), 2)
    assert [b.tolist() for b in batches] == [[1, 3], [4, 0], [2]]


# ------------------------------------------------------------------------------------------------ files
def test_text_tables_in_csv_tsv_and_jsonl(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\n"hello, world",pos\nbad day,neg\n')
    (tmp_path / "a.tsv").write_text("label\tsentence\npos\thello, world\nneg\tbad day\n")
    (tmp_path / "a.jsonl").write_text('{"text": "hello, world", "label": 1}\n\n{"text": "bad day", "label": 0}\n')
    csv_t = read_table(tmp_path / "a.csv", labels="required")
    tsv_t = read_table(tmp_path / "a.tsv", Columns(text_column="sentence"))
    js = read_table(tmp_path / "a.jsonl")
    assert csv_t.kind == tsv_t.kind == js.kind == "text"
    assert csv_t.items == tsv_t.items == js.items == ["hello, world", "bad day"]
    assert csv_t.labels == ["pos", "neg"] and js.labels == [1, 0]
    assert csv_t.names[1] == f"line 3 of {tmp_path / 'a.csv'}"


def test_long_format_series_are_grouped_by_id_and_sorted_by_time(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("id,t,x,y,label\ns2,1,10,20,b\ns1,2,3,4,a\ns1,1,1,2,a\ns2,0,,0,b\n")
    table = read_table(path, Columns(time_column="t"), labels="required")
    assert table.kind == "series" and table.ids == ["s2", "s1"] and table.labels == ["b", "a"]
    assert np.array_equal(table.items[1], [[1, 2], [3, 4]])
    assert np.isnan(table.items[0][0, 0]) and table.items[0][1, 1] == 20  # an empty cell is a missing value
    only_x = read_table(path, Columns(time_column="t", channels="x"))
    assert only_x.items[1].shape == (2, 1)


def test_numpy_files_with_padding_lengths_and_without_pickle(tmp_path):
    X = np.random.default_rng(0).normal(size=(3, 2, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", X=X, y=np.array(["u", "v", "u"]), lengths=np.array([6, 2, 4]))
    table = read_table(tmp_path / "d.npz", labels="required")
    assert [s.shape for s in table.items] == [(6, 2), (2, 2), (4, 2)]
    assert np.array_equal(table.items[1], X[1, :, :2].T) and table.labels == ["u", "v", "u"]
    np.save(tmp_path / "x.npy", X)
    assert read_table(tmp_path / "x.npy").labels is None
    with pytest.raises(DataError, match="no labels in this file"):
        read_table(tmp_path / "x.npy", labels="required")
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = np.ones((1, 3)), np.ones((1, 4))
    np.savez(tmp_path / "obj.npz", X=objects)
    with pytest.raises(DataError, match="seqlab never unpickles"):
        read_table(tmp_path / "obj.npz")
    np.savez(tmp_path / "bad.npz", X=X, lengths=np.array([6, 0, 4]))
    with pytest.raises(DataError, match=r"series 1 of .*bad\.npz: length 0 outside 1\.\.6"):
        read_table(tmp_path / "bad.npz")


def test_ts_files_are_read_through_aeon(tmp_path):
    path = tmp_path / "tiny.ts"
    path.write_text(
        "@problemName tiny\n@timeStamps false\n@missing false\n@univariate true\n@equalLength false\n"
        "@classLabel true a b\n@data\n1.0,2.0,3.0:a\n4.0,5.0:b\n"
    )
    table = read_table(path, labels="required")
    assert table.labels == ["a", "b"] and [s[:, 0].tolist() for s in table.items] == [[1, 2, 3], [4, 5]]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("a.csv", "text,kind\nhi,x\n", r"no 'label' column \(columns: text, kind\); set --label-column"),
        ("a.csv", "text,label\nhi,x\nho\n", "line 3 of .*a.csv: 1 fields, the header has 2"),
        ("a.csv", "text,label\nhi,x\n,y\n", "line 3 of .*a.csv: empty text in column 'text'"),
        ("a.csv", "text,label\nhi,x\nho, \n", "line 3 of .*a.csv: no label in column 'label'"),
        ("a.csv", "name,label\nhi,x\n", "neither a text column 'text' nor a series id column 'id'"),
        ("a.csv", "", "empty file"),
        ("a.csv", "id,x,label\n1,0.5,a\n1,zero,a\n", "line 3 of .*a.csv: x = 'zero' is not a number"),
        ("a.csv", "id,x,label\n1,0.5,a\n1,0.7,b\n", "series '1' of .*a.csv: more than one label"),
        ("a.jsonl", '{"text": "hi", "label": 1}\n{"label": 2}\n', "line 2 of .*a.jsonl: no text field 'text'"),
        ("a.jsonl", '{"text": "hi", "label": 1}\n[1]\n', "line 2 of .*a.jsonl: expected a JSON object"),
        ("a.jsonl", '{"text": "hi", "label": 1}\n{"text": "ho"}\n', "line 2 of .*a.jsonl: no label field"),
        ("a.parquet", "x", "unknown format .parquet"),
    ],
)
def test_bad_files_get_one_line_naming_the_file_and_row(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        read_table(path, labels="required")
    assert "\n" not in str(err.value)


def test_a_file_that_is_not_utf8_or_missing(tmp_path):
    (tmp_path / "b.csv").write_bytes(b"text,label\n\xff\xfe,x\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_table(tmp_path / "b.csv")
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "none.csv")
