"""Labelled sequences from files: text tables and time series, each error naming the file and the row or series.

Formats, by suffix:
- ``.csv`` / ``.tsv`` with a text column: one text per row (the text and label columns are named by options).
- ``.csv`` / ``.tsv`` with an id column: time series in long format, one row per time step — series id, optional
  time index (rows are sorted by it within a series), one column per channel, and the label (constant per series).
- ``.jsonl``: one JSON object per line with the text and label fields.
- ``.npz``: ``X`` (n, channels, length) or (n, length), optional ``lengths`` (n,) when series of unequal length
  are right-padded in X, optional ``y`` (n,). Saved without pickle (object arrays are refused: loading them could
  run code). ``.npy``: X alone, for prediction.
- ``.ts``: the UCR/UEA archive's own format, read with aeon when it is installed (the ``aeon`` extra).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
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
    path, columns = Path(path), columns or Columns()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
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
    groups: dict[str, list] = {}
    for line, row in rows:
        sid = row[ii].strip()
        values = []
        for c in ci:
            cell = row[c].strip()
            try:
                values.append(float(cell) if cell else math.nan)  # an empty cell is a missing value
            except ValueError:
                raise DataError(f"line {line} of {path}: {header[c]} = {cell!r} is not a number") from None
        when = 0.0
        if ti is not None:
            try:
                when = float(row[ti])
            except ValueError:
                raise DataError(f"line {line} of {path}: time {row[ti]!r} is not a number") from None
        label = row[li].strip() if li is not None else None
        groups.setdefault(sid, []).append((when, line, values, label))
    table = Table("series", labels=[] if has_label else None)
    for sid, steps in groups.items():
        name = f"series {sid!r} of {path}"
        if ti is not None:
            steps.sort(key=lambda s: s[0])
        if has_label:
            found = {s[3] for s in steps}
            if found == {""}:
                raise DataError(f"{name}: no label in column {columns.label_column!r}")
            if len(found) > 1:
                raise DataError(f"{name}: more than one label ({', '.join(sorted(found))}); a series has one")
            table.labels.append(found.pop())
        table.items.append(np.array([s[2] for s in steps], dtype=np.float32))
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
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e}") from None
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
        X, y = load_from_ts_file(str(path))
    except (OSError, ValueError, TypeError) as e:
        raise DataError(f"{path}: not a readable .ts file ({e})") from None
    series, _ = series_from_arrays(X, str(path))
    n = len(series)
    return Table("series", series, None if y is None else list(y), [f"series {i} of {path}" for i in range(n)],
                 [str(i) for i in range(n)])  # fmt: skip
