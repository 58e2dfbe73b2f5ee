"""Labelled sequences from files: text tables and time series, each error naming the file and the row or series.

Formats, by suffix:
- ``.csv`` / ``.tsv`` with a text column: one text per row (the text and label columns are named by options).
- ``.csv`` / ``.tsv`` with an id column: time series in long format, one row per time step — series id, optional
  time column (numbers or ISO dates; rows are sorted by it within a series, a time given twice is refused), one
  column per channel, and the label (constant per series).
- ``.jsonl``: one JSON object per line with the text and label fields.
- ``.npz``: ``X`` (n, channels, length) or (n, length), optional ``lengths`` (n,) when series of unequal length
  are right-padded in X, optional ``y`` (n,). Saved without pickle (object arrays are refused: loading them could
  run code). ``.npy``: X alone, for prediction.
- ``.ts``: the UCR/UEA archive's own format, read with aeon when it is installed (the ``aeon`` extra); a label
  that the header's ``@classLabel`` line does not declare is refused.

The time columns of long-format files (here and in ``timeseries.read_series``) are read by ``read_times``.
"""

from __future__ import annotations

import calendar
import csv
import json
import math
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from .errors import DataError
from .sequences import series_from_arrays


@dataclass
class Table:
    """What a file holds: texts or series (float32 (T_i, C)), labels (None when it has none), names and ids."""

    kind: str  # 'text' | 'series'
    items: list = field(default_factory=list)
    labels: list | None = None
    names: list[str] = field(default_factory=list)  # "line 12 of data.csv": for error messages
    ids: list[str] = field(default_factory=list)  # for prediction files: row number or series id


@dataclass
class Columns:
    """Which columns mean what; every field is a CLI flag of ``seqlab classify``."""

    text_column: str = "text"
    label_column: str = "label"
    id_column: str = "id"  # long-format series
    time_column: str | None = None  # long-format series: sort each series' rows by this column
    channels: str | None = None  # long-format series: comma-separated channel columns (default: all the others)


def read_table(path: str | Path, columns: Columns | None = None, labels: str = "optional") -> Table:
    """Read ``path``. ``labels``: 'required' (training, evaluation), 'optional' (prediction: used when present)."""
    path, columns = data_file(path), columns or Columns()
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        table = _read_delimited(path, columns, "\t" if suffix == ".tsv" else ",", labels)
    elif suffix == ".jsonl":
        table = _read_jsonl(path, columns, labels)
    elif suffix in (".npz", ".npy"):
        table = _read_numpy(path)
    elif suffix == ".ts":
        table = _read_ts(path)
    else:
        raise DataError(
            f"{path}: unknown format {suffix or '(no suffix)'}; expected .csv, .tsv, .jsonl, .npz, .npy, .ts"
        )
    if labels == "required" and table.labels is None:
        raise DataError(f"{path}: no labels in this file ({_where_labels(suffix, columns)})")
    if not table.items:
        raise DataError(f"{path}: no sequences in the file")
    return table


def _where_labels(suffix: str, columns: Columns) -> str:
    if suffix in (".npz", ".npy"):
        return "an .npz needs a y array beside X"
    if suffix == ".ts":
        return "a .ts file needs '@classLabel true' with its classes, and a label after each series"
    return f"expected a {columns.label_column!r} column; set --label-column"


def _read_delimited(path: Path, columns: Columns, delimiter: str, labels: str) -> Table:
    csv.field_size_limit(1 << 30)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: empty file")
            rows = [(reader.line_num, row) for row in reader if row]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise DataError(f"{path}: not readable as {'TSV' if delimiter == chr(9) else 'CSV'}: {e}") from None
    header = [h.strip() for h in header]
    for line, row in rows:
        if len(row) != len(header):
            raise DataError(f"line {line} of {path}: {len(row)} fields, the header has {len(header)}")
    has_label = columns.label_column in header
    if labels == "required" and not has_label:
        raise DataError(
            f"{path}: no {columns.label_column!r} column (columns: {', '.join(header)}); set --label-column"
        )
    if columns.text_column in header:
        ti, li = header.index(columns.text_column), header.index(columns.label_column) if has_label else None
        table = Table("text", labels=[] if has_label else None)
        for n, (line, row) in enumerate(rows):
            name = f"line {line} of {path}"
            if not row[ti]:
                raise DataError(f"{name}: empty text in column {columns.text_column!r}")
            if li is not None:
                if not row[li].strip():
                    raise DataError(f"{name}: no label in column {columns.label_column!r}")
                table.labels.append(row[li].strip())
            table.items.append(row[ti])
            table.names.append(name)
            table.ids.append(str(n))
        return table
    if columns.id_column in header:
        return _read_long(path, header, rows, columns, has_label)
    raise DataError(
        f"{path}: neither a text column {columns.text_column!r} nor a series id column {columns.id_column!r} "
        f"(columns: {', '.join(header)}); set --text-column or --id-column"
    )


def _read_long(path: Path, header: list[str], rows: list, columns: Columns, has_label: bool) -> Table:
    """Long format: rows of (id, [time], channels..., [label]) -> one (T_i, C) series per id, in order of appearance."""
    ii = header.index(columns.id_column)
    ti = None
    if columns.time_column is not None:
        if columns.time_column not in header:
            raise DataError(f"{path}: no time column {columns.time_column!r} (columns: {', '.join(header)})")
        ti = header.index(columns.time_column)
    li = header.index(columns.label_column) if has_label else None
    if columns.channels:
        wanted = [c.strip() for c in columns.channels.split(",") if c.strip()]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise DataError(f"{path}: no channel column {missing[0]!r} (columns: {', '.join(header)})")
        ci = [header.index(c) for c in wanted]
    else:
        ci = [i for i in range(len(header)) if i not in (ii, ti, li)]
    if not ci:
        raise DataError(f"{path}: no channel columns besides id, time and label")
    steps = []  # (series id, line, values, label), in file order
    for line, row in rows:
        values = []
        for c in ci:
            cell = row[c].strip()
            try:
                values.append(float(cell) if cell else math.nan)  # an empty cell is a missing value
            except ValueError:
                raise DataError(f"line {line} of {path}: {header[c]} = {cell!r} is not a number") from None
        steps.append((row[ii].strip(), line, values, row[li].strip() if li is not None else None))
    lines = [s[1] for s in steps]
    when, times = [], None
    if ti is not None and rows:
        when = [row[ti].strip() for _, row in rows]
        times = read_times(when, lines, path)
        if times.keys is None:
            raise DataError(
                f"line {lines[0]} of {path}: time {when[0]!r} is not a number or an ISO date "
                "(YYYY-MM, YYYY-MM-DD or YYYY-MM-DD HH:MM)"
            )
    groups: dict[str, list[int]] = {}  # row indices per series, series in order of appearance
    for i, s in enumerate(steps):
        groups.setdefault(s[0], []).append(i)
    table = Table("series", labels=[] if has_label else None)
    for sid, index in groups.items():
        name = f"series {sid!r} of {path}"
        if times is not None:
            index = time_order(index, times, when, lines, name)
        if has_label:
            found = {steps[i][3] for i in index}
            if found == {""}:
                raise DataError(f"{name}: no label in column {columns.label_column!r}")
            if len(found) > 1:
                raise DataError(f"{name}: more than one label ({', '.join(sorted(found))}); a series has one")
            table.labels.append(found.pop())
        table.items.append(np.array([steps[i][2] for i in index], dtype=np.float32))
        table.names.append(name)
        table.ids.append(sid)
    return table


def _read_jsonl(path: Path, columns: Columns, labels: str) -> Table:
    table = Table("text", labels=None)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    records = []
    for line, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"line {line} of {path}: not JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(f"line {line} of {path}: expected a JSON object")
        records.append((line, obj))
    has_label = any(columns.label_column in obj for _, obj in records)
    if has_label or labels == "required":
        table.labels = []
    for n, (line, obj) in enumerate(records):
        name = f"line {line} of {path}"
        text = obj.get(columns.text_column)
        if not isinstance(text, str):
            raise DataError(f"{name}: no text field {columns.text_column!r} (or it is not a string)")
        if not text:
            raise DataError(f"{name}: empty text in field {columns.text_column!r}")
        if table.labels is not None:
            label = obj.get(columns.label_column)
            if label is None or label == "":
                raise DataError(f"{name}: no label field {columns.label_column!r}")
            table.labels.append(label)
        table.items.append(text)
        table.names.append(name)
        table.ids.append(str(n))
    return table


def _read_numpy(path: Path) -> Table:
    numpy_file(path)
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            X, y, lengths = data, None, None
        else:
            with data:  # an .npz reads each array when it is indexed: inside the try
                if "X" not in data.files:
                    raise DataError(f"{path}: no array X (arrays: {', '.join(data.files)})")
                X = data["X"]
                y = data["y"] if "y" in data.files else None
                lengths = data["lengths"] if "lengths" in data.files else None
    except DataError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise DataError(
                f"{path}: holds Python objects, which need pickle; seqlab never unpickles. Save unequal lengths as a "
                "padded X (n, channels, length) with a lengths array"
            ) from None
        raise DataError(f"{path}: not a NumPy file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable NumPy file ({e})") from None
    if X.ndim == 2:
        X = X[:, None, :]
    if X.ndim != 3:
        raise DataError(f"{path}: X must be (n, channels, length) or (n, length), got shape {X.shape}")
    if y is not None and len(y) != len(X):
        raise DataError(f"{path}: y has {len(y)} labels for {len(X)} series")
    items = list(X)
    if lengths is not None:
        if lengths.shape != (len(X),) or not np.issubdtype(lengths.dtype, np.integer):
            raise DataError(f"{path}: lengths must be {len(X)} integers")
        for i, n in enumerate(lengths):
            if not 0 < n <= X.shape[2]:
                raise DataError(f"series {i} of {path}: length {n} outside 1..{X.shape[2]}")
        items = [x[:, :n] for x, n in zip(X, lengths, strict=True)]
    series, _ = series_from_arrays(items, str(path))
    n = len(series)
    return Table("series", series, None if y is None else y.tolist(), [f"series {i} of {path}" for i in range(n)],
                 [str(i) for i in range(n)])  # fmt: skip


def _read_ts(path: Path) -> Table:
    try:
        from aeon.datasets import load_from_ts_file
    except ImportError:
        raise DataError(f"{path}: reading .ts files needs aeon (pip install 'seqlab[aeon]')") from None
    try:
        X, y, meta = load_from_ts_file(str(path), return_meta_data=True)
    except (OSError, ValueError, TypeError) as e:
        raise DataError(f"{path}: not a readable .ts file ({e})") from None
    series, _ = series_from_arrays(X, str(path))
    n = len(series)
    labels = list(y) if len(y) else None  # no labels: aeon gives an empty y
    if labels is not None and meta["classlabel"]:
        declared = meta["class_values"]  # aeon lower-cases the header and the labels alike
        for i, label in enumerate(str(v).strip() for v in labels):
            if label not in declared:  # aeon would make it a class of its own
                raise DataError(
                    f"series {i} of {path}: label {label!r} is not declared in the header's @classLabel line "
                    f"(declared: {', '.join(declared)})"
                )
    return Table("series", series, labels, [f"series {i} of {path}" for i in range(n)],
                 [str(i) for i in range(n)])  # fmt: skip


# ------------------------------------------------------------------------------------------------ shared by readers
def data_file(path: str | Path) -> Path:
    """``path`` as a Path, refused unless it names a file: a directory and a missing file each say which."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    return path


def numpy_file(path: Path) -> None:
    """Refuse a file that is neither a zip (.npz) nor an .npy before numpy reads it: numpy takes anything else for a
    pickle, and its refusal to unpickle would blame Python objects that are not there."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06") or head == b"\x93NUMPY":  # a zip (or an empty one), an .npy
        return
    if path.suffix.lower() == ".npz":
        raise DataError(f"{path}: not a valid .npz archive (expected a zip of .npy arrays, as numpy.savez writes)")
    raise DataError(f"{path}: not a valid .npy file (expected an array saved by numpy.save)")


# A time column is read by the kind of its first value, and every other value must be of that kind:
# - numbers ("3", "2.5"), compared as numbers;
# - ISO months ("2024-03"), dates ("2024-03-31") and date-times ("2024-03-31 12:00"), compared in time;
# - anything else is a label with no order to trust ("m10" < "m2" as strings): the caller decides.
# Integers, months, dates and date-times also count steps, so gaps can be found: their keys are whole numbers of
# units (the integer itself, months, days or microseconds). Dates that all fall on one day of the month (<= 28), or
# all on month ends, count months: monthly data written as dates has steps of 28 to 31 days, not one step.
_INTEGER = re.compile(r"[+-]?\d+")
_MONTH = re.compile(r"\d{4}-\d{2}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*")
_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Times:
    """A time column's values as sort keys (None: labels without an order), and ``label(key)``, which writes a key
    back in the file's format (None: the keys do not count steps, e.g. 0.5, 1.0, 1.5)."""

    keys: list | None
    label: Callable[[int], str] | None


def _number(value: str) -> int | float:
    if _INTEGER.fullmatch(value):
        return int(value)
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(value)
    return x


def _month(value: str) -> int:
    if not _MONTH.fullmatch(value) or not 1 <= int(value[5:]) <= 12:
        raise ValueError(value)
    return int(value[:4]) * 12 + int(value[5:]) - 1


def _date(value: str) -> date:
    if not _DATE.fullmatch(value):
        raise ValueError(value)
    return date.fromisoformat(value)


def _datetime(value: str) -> datetime:
    if not _DATETIME.fullmatch(value):
        raise ValueError(value)
    return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)  # 3.10 reads no Z


def read_times(values: list[str], lines: list[int], path: Path) -> Times:
    """Sort keys for a file's time column (``values``, one per row, at ``lines`` of ``path``)."""
    first = values[0]

    def each(parse, what):
        out = []
        for value, line in zip(values, lines, strict=True):
            try:
                out.append(parse(value))
            except ValueError:
                raise DataError(f"line {line} of {path}: time {value!r} is not {what} like {first!r}") from None
        return out

    try:
        _number(first)
    except ValueError:
        pass
    else:
        keys = each(_number, "a number")
        return Times(keys, str if all(isinstance(k, int) for k in keys) else None)
    if _MONTH.fullmatch(first):
        return Times(each(_month, "a month YYYY-MM"), lambda k: f"{k // 12:04d}-{k % 12 + 1:02d}")
    if _DATE.fullmatch(first):
        dates = each(_date, "a date YYYY-MM-DD")
        days = {d.day for d in dates}
        if len(days) == 1 and min(days) <= 28:
            day = min(days)
            return Times(
                [d.year * 12 + d.month - 1 for d in dates], lambda k: date(k // 12, k % 12 + 1, day).isoformat()
            )
        if all(d.day == calendar.monthrange(d.year, d.month)[1] for d in dates):

            def month_end(k: int) -> str:
                y, m = divmod(k, 12)
                return date(y, m + 1, calendar.monthrange(y, m + 1)[1]).isoformat()

            return Times([d.year * 12 + d.month - 1 for d in dates], month_end)
        return Times([d.toordinal() for d in dates], lambda k: date.fromordinal(k).isoformat())
    if _DATETIME.fullmatch(first):
        stamps = each(_datetime, "a date-time YYYY-MM-DD HH:MM")
        zone = stamps[0].tzinfo
        keys = [(t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t) - _EPOCH for t in stamps]
        clock = re.sub(r"(Z|[+-]\d{2}:?\d{2})$", "", first[11:])
        spec = {5: "minutes", 8: "seconds"}.get(len(clock), "auto")

        def stamp(k: int) -> str:
            t = _EPOCH + k * _MICROSECOND
            if zone is not None:
                t = t.replace(tzinfo=timezone.utc).astimezone(zone)
            return t.isoformat(first[10], spec)

        return Times([k // _MICROSECOND for k in keys], stamp)
    return Times(None, None)


def time_order(index: list[int], times: Times, values: list[str], lines: list[int], where: str) -> list[int]:
    """Rows ``index`` of one series (``where``), sorted by time; a time step given twice is refused. Labels without
    an order (``times.keys`` None) keep the file's order."""
    keys = values if times.keys is None else times.keys
    ordered = list(index) if times.keys is None else sorted(index, key=keys.__getitem__)
    seen: dict = {}
    for i in ordered:
        if keys[i] in seen:
            raise DataError(f"{where}: time {values[i]!r} appears twice (lines {lines[seen[keys[i]]]} and {lines[i]})")
        seen[keys[i]] = i
    return ordered
