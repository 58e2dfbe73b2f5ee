"""The readers' guard-rails: time order, duplicated and missing time steps, undeclared .ts labels, and the right
diagnosis for a file that is not what its suffix says or a directory where a file belongs."""

import re

import numpy as np
import pytest

from seqlab.data.errors import DataError
from seqlab.data.tables import Columns, read_table
from seqlab.data.text import open_source, read_text
from seqlab.data.timeseries import fill_missing, read_series

SORTED = "id,t,y,k\na,8,10,0\na,9,11,1\na,10,12,0\na,11,13,1\nb,1,20,5\nb,2,21,6\n"
SHUFFLED = "id,t,y,k\nb,2,21,6\na,11,13,1\na,9,11,1\nb,1,20,5\na,10,12,0\na,8,10,0\n"


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    return path


def message(path, text):
    """The exact message, as a pattern for pytest.raises."""
    return "^" + re.escape(text.format(path=path)) + "$"


# ------------------------------------------------------------------------------------------------ time order
def test_series_are_sorted_by_time_within_each_series_and_times_compare_as_numbers(tmp_path):
    ordered = read_series(write(tmp_path, "s.csv", SORTED), "t", "id", "y", "k")
    shuffled = read_series(write(tmp_path, "u.csv", SHUFFLED), "t", "id", "y", "k")
    assert shuffled.ids == ["b", "a"] and ordered.ids == ["a", "b"]  # series keep their order of appearance
    assert shuffled.times[1] == ordered.times[0] == ["8", "9", "10", "11"]  # 10 after 9: numbers, not strings
    assert shuffled.targets[1][:, 0].tolist() == ordered.targets[0][:, 0].tolist() == [10, 11, 12, 13]
    assert shuffled.covariates[1][:, 0].tolist() == [0, 1, 0, 1]
    assert shuffled.targets[0][:, 0].tolist() == [20, 21] and shuffled.times[0] == ["1", "2"]


def test_iso_dates_are_sorted_in_time_by_both_readers(tmp_path):
    path = write(tmp_path, "d.csv", "id,t,y,label\nx,2024-03,3,p\nx,2023-12,0,p\nx,2024-01,1,p\nx,2024-02,2,p\n")
    series = read_series(path, "t", "id", "y")
    assert series.times[0] == ["2023-12", "2024-01", "2024-02", "2024-03"]
    assert series.targets[0][:, 0].tolist() == [0, 1, 2, 3]
    table = read_table(path, Columns(time_column="t", channels="y"), labels="required")
    assert table.items[0][:, 0].tolist() == [0, 1, 2, 3] and table.labels == ["p"]
    stamps = "t,y\n2024-01-01 02:00,2\n2024-01-01 00:00,0\n2024-01-01 01:00,1\n"
    assert read_series(write(tmp_path, "h.csv", stamps), "t").targets[0][:, 0].tolist() == [0, 1, 2]


def test_time_labels_that_are_neither_numbers_nor_dates_keep_the_file_order_without_a_gap_check(tmp_path):
    series = read_series(write(tmp_path, "m.csv", "t,y\nm2,0\nm10,1\nm1,2\nm7,3\n"), "t")
    assert series.times[0] == ["m2", "m10", "m1", "m7"] and series.targets[0][:, 0].tolist() == [0, 1, 2, 3]
    path = write(tmp_path, "l.csv", "id,t,x\na,m2,0\na,m1,1\n")
    with pytest.raises(
        DataError,
        match=message(
            path, "line 2 of {path}: time 'm2' is not a number or an ISO date (YYYY-MM, YYYY-MM-DD or YYYY-MM-DD HH:MM)"
        ),
    ):
        read_table(path, Columns(time_column="t"))


def test_a_time_of_another_kind_than_the_first_is_refused_naming_its_line(tmp_path):
    path = write(tmp_path, "k.csv", "t,y\n1,0\n2,1\n2024-01,2\n")
    with pytest.raises(DataError, match=message(path, "line 4 of {path}: time '2024-01' is not a number like '1'")):
        read_series(path, "t")


# ------------------------------------------------------------------------------------------------ duplicates
def test_a_duplicated_time_step_is_refused_by_both_readers(tmp_path):
    path = write(tmp_path, "dup.csv", "id,t,y,label\na,1,0,p\nb,1,5,q\na,2,1,p\na,1.0,2,p\n")
    text = "series 'a' of {path}: time '1.0' appears twice (lines 2 and 5)"
    with pytest.raises(DataError, match=message(path, text)):
        read_series(path, "t", "id", "y")
    with pytest.raises(DataError, match=message(path, text)):
        read_table(path, Columns(time_column="t", channels="y"))
    labels = write(tmp_path, "lab.csv", "t,y\nmon,0\ntue,1\nmon,2\n")
    with pytest.raises(
        DataError, match=message(labels, "series '0' of {path}: time 'mon' appears twice (lines 2 and 4)")
    ):
        read_series(labels, "t")


# ------------------------------------------------------------------------------------------------ gaps
GAPPY = "id,t,y,k\na,1,0,10\na,2,1,11\na,3,2,12\na,6,5,15\na,7,6,16\nb,1,9,0\nb,2,8,0\n"


def test_a_gap_is_refused_by_default_naming_the_series_and_the_first_gap(tmp_path):
    path = write(tmp_path, "g.csv", GAPPY)
    text = "series 'a' of {path}: missing time steps between 3 and 6; pass --fill-gaps to insert them as missing values"
    with pytest.raises(DataError, match=message(path, text)):
        read_series(path, "t", "id", "y", "k")


def test_fill_gaps_inserts_nan_rows_that_impute_then_interpolates(tmp_path):
    data = read_series(write(tmp_path, "g.csv", GAPPY), "t", "id", "y", "k", fill_gaps=True)
    assert data.times[0] == ["1", "2", "3", "4", "5", "6", "7"] and data.times[1] == ["1", "2"]
    y, k = data.targets[0][:, 0], data.covariates[0][:, 0]
    assert y[:3].tolist() == [0, 1, 2] and np.isnan(y[3:5]).all() and y[5:].tolist() == [5, 6]
    assert k[:3].tolist() == [10, 11, 12] and np.isnan(k[3:5]).all() and k[5:].tolist() == [15, 16]
    with pytest.raises(DataError, match="nan at time step 3, channel 0"):
        fill_missing(data, "refuse")
    imputed = fill_missing(data, "impute")
    assert imputed.targets[0][:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert imputed.covariates[0][:, 0].tolist() == [10, 11, 12, 13, 14, 15, 16]
    assert imputed.targets[1][:, 0].tolist() == [9, 8]


@pytest.mark.parametrize(
    "times, filled",
    [
        (["2024-01", "2024-02", "2024-05"], ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]),
        (
            ["2023-11-01", "2023-12-01", "2024-03-01"],
            ["2023-11-01", "2023-12-01", "2024-01-01", "2024-02-01", "2024-03-01"],
        ),
        (["2024-01-31", "2024-02-29", "2024-04-30"], ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"]),
        (
            ["2024-02-27", "2024-02-28", "2024-03-02"],
            ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02"],
        ),
        (
            ["2024-01-01 00:00", "2024-01-01 06:00", "2024-01-01 18:00"],
            ["2024-01-01 00:00", "2024-01-01 06:00", "2024-01-01 12:00", "2024-01-01 18:00"],
        ),
        (["0", "5", "10", "20"], ["0", "5", "10", "15", "20"]),
    ],
)
def test_gaps_in_months_dates_and_date_times_are_filled_with_the_series_step(tmp_path, times, filled):
    path = write(tmp_path, "t.csv", "t,y\n" + "".join(f"{t},{i}\n" for i, t in enumerate(times)))
    with pytest.raises(DataError, match=f"missing time steps between {times[-2]} and {times[-1]}"):
        read_series(path, "t")
    data = read_series(path, "t", fill_gaps=True)
    assert data.times[0] == filled
    y = data.targets[0][:, 0]
    assert np.isnan(y).sum() == len(filled) - len(times) and y[~np.isnan(y)].tolist() == list(range(len(times)))


def test_a_gap_that_is_not_a_whole_number_of_steps_cannot_be_filled(tmp_path):
    path = write(tmp_path, "i.csv", "t,y\n0,0\n2,1\n4,2\n7,3\n")
    text = (
        "series '0' of {path}: cannot fill the gap between 4 and 7: it is not a whole number of the series' steps "
        "(the most common step is 0 to 2)"
    )
    with pytest.raises(DataError, match=message(path, text)):
        read_series(path, "t", fill_gaps=True)


def test_numbers_that_are_not_integers_are_sorted_but_not_checked_for_gaps(tmp_path):
    data = read_series(write(tmp_path, "f.csv", "t,y\n0.5,1\n0.0,0\n3.5,2\n"), "t")
    assert data.times[0] == ["0.0", "0.5", "3.5"] and data.targets[0][:, 0].tolist() == [0, 1, 2]


# ------------------------------------------------------------------------------------------------ .ts labels
TS_HEADER = "@problemName tiny\n@timeStamps false\n@missing false\n@univariate true\n@equalLength false\n"


def test_a_ts_label_not_declared_in_the_header_is_refused(tmp_path):
    path = write(tmp_path, "bad.ts", TS_HEADER + "@classLabel true a b\n@data\n1.0,2.0,3.0:a\n4.0,5.0:c\n6.0:b\n")
    text = "series 1 of {path}: label 'c' is not declared in the header's @classLabel line (declared: a, b)"
    with pytest.raises(DataError, match=message(path, text)):
        read_table(path, labels="required")


def test_a_ts_file_with_declared_labels_still_reads(tmp_path):
    path = write(tmp_path, "good.ts", TS_HEADER + "@classLabel true a b\n@data\n1.0,2.0,3.0:a\n4.0,5.0:b\n6.0:a\n")
    table = read_table(path, labels="required")
    assert table.labels == ["a", "b", "a"]
    assert [s[:, 0].tolist() for s in table.items] == [[1, 2, 3], [4, 5], [6]]


# ------------------------------------------------------------------------------------------------ diagnoses
@pytest.mark.parametrize("content", [b"X,y\n1,2\n", bytes(range(256)), b""])
def test_a_file_named_npz_that_is_not_a_zip_is_called_what_it_is(tmp_path, content):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    text = "{path}: not a valid .npz archive (expected a zip of .npy arrays, as numpy.savez writes)"
    for read in (read_table, read_series):
        with pytest.raises(DataError, match=message(path, text)):
            read(path)
    npy = tmp_path / "x.npy"
    npy.write_bytes(content)
    with pytest.raises(DataError, match=message(npy, "{path}: not a valid .npy file (expected an array saved by")[:-1]):
        read_table(npy)


def test_a_truncated_npz_is_refused_as_unreadable_and_object_arrays_still_blame_pickle(tmp_path):
    np.savez(tmp_path / "whole.npz", X=np.zeros((2, 3)))
    path = tmp_path / "cut.npz"
    path.write_bytes((tmp_path / "whole.npz").read_bytes()[:40])
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}: not a readable NumPy file"):
        read_table(path)
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = [1.0], [1.0, 2.0]
    np.savez(tmp_path / "obj.npz", X=objects, y=objects)
    with pytest.raises(DataError, match="holds Python objects, which need pickle"):
        read_table(tmp_path / "obj.npz")


def test_a_directory_where_a_file_belongs_is_called_a_directory(tmp_path):
    folder = tmp_path / "data.csv"
    folder.mkdir()
    text = "{path}: is a directory, expected a file"
    for read in (read_table, read_series, read_text):
        with pytest.raises(DataError, match=message(folder, text)):
            read(folder)
    with pytest.raises(DataError, match=message(tmp_path / "none.csv", "{path}: no such file")):
        read_series(tmp_path / "none.csv")
    with pytest.raises(DataError, match=message(tmp_path / "none.txt", "{path}: no such file")):
        read_text(tmp_path / "none.txt")
    (folder / "a.txt").write_text("hello")
    assert list(open_source(str(folder)).documents()) == ["hello"]  # a directory is still a corpus
