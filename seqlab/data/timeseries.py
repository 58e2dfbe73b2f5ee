"""Series to forecast: reading them, their held-out tails, per-series scaling, and training windows.

Legend: T time (T_i of series i), C target channels, K known covariates, L context, H horizon.

A file holds one or many series, each a (T_i, C) float32 array of targets and optionally a (T_i, K) array of known
covariates (values known in advance for the future too: a calendar, a planned price). Formats:
- ``.csv``/``.tsv``: one row per time step; ``--time-column``, ``--id-column`` when the file holds several series,
  ``--targets`` (default: every other numeric column) and ``--covariates``. An empty cell is a missing value.
  The time column (read by ``tables.read_times``) orders each series' rows when it holds numbers or ISO dates;
  other labels ("m1", "week 3") keep the file's order. A time given twice within a series is refused. Integer and
  ISO-date times are checked for gaps (see ``read_series``).
- ``.npy``: (T,) or (T, C), one series. ``.npz``: ``y`` (T, C) or (n, T, C), optional ``covariates`` alike.

Splits (per series, by time, never shuffled): the last H steps are the test tail, the H before them the validation
tail, the rest is for training; training windows of L + H steps are drawn from the training part only.
"""

from __future__ import annotations

import csv
import math
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from .errors import DataError
from .tables import Times, data_file, numpy_file, read_times, time_order


@dataclass
class SeriesSet:
    """Targets (T_i, C) and covariates (T_i, K) or None, per series; ids and time labels for output and messages."""

    targets: list[np.ndarray]
    covariates: list[np.ndarray] | None = None
    ids: list[str] = field(default_factory=list)
    times: list[list[str]] = field(default_factory=list)
    source: str = "data"

    @property
    def channels(self) -> int:
        return self.targets[0].shape[1]

    @property
    def n_covariates(self) -> int:
        return 0 if self.covariates is None else self.covariates[0].shape[1]

    def name(self, i: int) -> str:
        return f"series {self.ids[i]!r} of {self.source}"


def series_set(y, covariates=None, source: str = "y") -> SeriesSet:
    """Python input: a (T,), (T, C) array, an (n, T, C) array or a list of (T_i,) / (T_i, C) arrays."""

    def as_list(a, what):
        if isinstance(a, np.ndarray) and a.ndim == 3:
            return list(a)
        if isinstance(a, np.ndarray) or (isinstance(a, (list, tuple)) and a and np.isscalar(a[0])):
            return [np.asarray(a)]
        if isinstance(a, (list, tuple)):
            return [np.asarray(s) for s in a]
        raise DataError(f"{what}: expected an array (T,), (T, C) or (n, T, C), or a list of series")

    targets = [np.asarray(s, dtype=np.float32).reshape(len(s), -1) for s in as_list(y, source)]
    cov = None
    if covariates is not None:
        cov = [np.asarray(s, dtype=np.float32).reshape(len(s), -1) for s in as_list(covariates, "covariates")]
        if len(cov) != len(targets) or any(len(a) != len(b) for a, b in zip(cov, targets, strict=True)):
            raise DataError("covariates must have one row per time step of every series")
    ids = [str(i) for i in range(len(targets))]
    return check(SeriesSet(targets, cov, ids, [[str(t) for t in range(len(s))] for s in targets], source))


def check(data: SeriesSet, channels: int | None = None, n_covariates: int | None = None) -> SeriesSet:
    """Refuse empty series and channel counts that differ (between series, or from a trained model's)."""
    if not data.targets:
        raise DataError(f"{data.source}: no series")
    want = data.channels if channels is None else channels
    for i, s in enumerate(data.targets):
        if len(s) == 0:
            raise DataError(f"{data.name(i)}: empty series")
        if s.shape[1] != want:
            raise DataError(f"{data.name(i)}: {s.shape[1]} target channels, expected {want}")
        if data.covariates is not None and n_covariates is not None and data.covariates[i].shape[1] != n_covariates:
            raise DataError(f"{data.name(i)}: {data.covariates[i].shape[1]} covariates, the model has {n_covariates}")
    if n_covariates and data.covariates is None:
        raise DataError(f"{data.source}: the model needs {n_covariates} known covariates; the data has none")
    return data


def fill_missing(data: SeriesSet, how: str) -> SeriesSet:
    """NaN/Inf: 'refuse' names the first; 'impute' interpolates linearly per channel (edges held flat)."""
    from .sequences import fix_missing

    names = [data.name(i) for i in range(len(data.targets))]
    targets = fix_missing(data.targets, names, how)
    cov = None if data.covariates is None else fix_missing(data.covariates, [f"{n} (covariates)" for n in names], how)
    return SeriesSet(targets, cov, data.ids, data.times, data.source)


def read_series(path: str | Path, time_column: str | None = None, id_column: str | None = None,
                targets: str | None = None, covariates: str | None = None, *,
                fill_gaps: bool = False) -> SeriesSet:  # fmt: skip
    """Read the series in ``path`` (.csv, .tsv, .npy, .npz; see the module's docstring).

    Arguments:
        time_column: the CSV column of time labels. Numbers and ISO dates (YYYY-MM, YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS])
            sort each series' rows; other labels keep the file's order. A time given twice in a series is refused.
            Integer and ISO-date times are checked for gaps: the most common difference between consecutive times
            is the series' step, and a larger difference is missing steps, refused unless ``fill_gaps``. Other
            labels, and numbers that are not all integers, get no gap check.
        id_column: the column naming the series, when the file holds several.
        targets, covariates: comma-separated columns (default targets: every other column).
        fill_gaps: insert the missing steps as rows of NaN (targets and covariates alike), for the missing-value
            policy (``fill_missing``) to refuse or impute.

    Returns:
        a SeriesSet of float32 targets (T_i, C) and covariates (T_i, K) or None, with ids and time labels.
    """
    path = data_file(path)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return _read_numpy(path)
    if suffix not in (".csv", ".tsv"):
        raise DataError(f"{path}: unknown format {suffix or '(no suffix)'}; expected .csv, .tsv, .npy, .npz")
    rows = _read_rows(path, "\t" if suffix == ".tsv" else ",", time_column, id_column, targets, covariates)
    values, lines, when, groups, n_targets, has_covariates = rows
    times = read_times(when, lines, path) if time_column is not None else None
    nan = [math.nan] * len(values[0])
    ys, ks, labels = [], [], []
    for sid, index in groups.items():
        if times is None:
            steps = [(i, str(n)) for n, i in enumerate(index)]
        else:
            index = time_order(index, times, when, lines, f"series {sid!r} of {path}")
            steps = _with_gaps(index, times, when, f"series {sid!r} of {path}", fill_gaps)
        table = np.array([values[i] if i is not None else nan for i, _ in steps], np.float32).reshape(len(steps), -1)
        ys.append(np.ascontiguousarray(table[:, :n_targets]))
        ks.append(np.ascontiguousarray(table[:, n_targets:]))
        labels.append([label for _, label in steps])
    return check(SeriesSet(ys, ks if has_covariates else None, list(groups), labels, str(path)))


def _read_numpy(path: Path) -> SeriesSet:
    """.npy (T,) or (T, C); .npz with y (and covariates): one series or (n, T, C)."""
    numpy_file(path)
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            y, cov = data, None
        else:
            with data:
                if "y" not in data.files:
                    raise DataError(f"{path}: no array y (arrays: {', '.join(data.files)})")
                y = data["y"]
                cov = data["covariates"] if "covariates" in data.files else None
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a NumPy file without pickled objects ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable NumPy file ({e})") from None
    return series_set(y, cov, str(path))


def _read_rows(path: Path, delimiter: str, time_column: str | None, id_column: str | None, targets: str | None,
               covariates: str | None):  # fmt: skip
    """The CSV's rows in file order: per row its numbers (targets, then covariates), line number and time label;
    the row indices of each series (in order of appearance); how many targets; whether there are covariates."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = [h.strip() for h in next(reader, [])]
            rows = [(reader.line_num, r) for r in reader if r]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    if not header:
        raise DataError(f"{path}: empty file")

    def column(name: str | None, what: str) -> int | None:
        if name is None:
            return None
        if name not in header:
            raise DataError(f"{path}: no {what} column {name!r} (columns: {', '.join(header)})")
        return header.index(name)

    ti, ii = column(time_column, "time"), column(id_column, "id")
    ki = [column(c.strip(), "covariate") for c in covariates.split(",")] if covariates else []
    if targets:
        yi = [column(c.strip(), "target") for c in targets.split(",")]
    else:
        yi = [i for i in range(len(header)) if i not in (ti, ii, *ki)]
    if not yi:
        raise DataError(f"{path}: no target columns (columns: {', '.join(header)}); set --targets")
    values, lines, when = [], [], []  # per row, in file order
    groups: dict[str, list[int]] = {}  # row indices per series, series in order of appearance
    for line, row in rows:
        if len(row) != len(header):
            raise DataError(f"line {line} of {path}: {len(row)} fields, the header has {len(header)}")
        cells = []
        for c in (*yi, *ki):
            cell = row[c].strip()
            try:
                cells.append(float(cell) if cell else math.nan)
            except ValueError:
                raise DataError(f"line {line} of {path}: {header[c]} = {cell!r} is not a number") from None
        groups.setdefault(row[ii].strip() if ii is not None else "0", []).append(len(values))
        values.append(cells)
        lines.append(line)
        when.append(row[ti].strip() if ti is not None else "")
    if not groups:
        raise DataError(f"{path}: no rows")
    return values, lines, when, groups, len(yi), bool(ki)


def _with_gaps(index: list[int], times: Times, when: list[str], where: str, fill: bool) -> list[tuple[int | None, str]]:
    """One series' rows in time order as (row, time label), with (None, label) for each missing step when ``fill``;
    missing steps are refused otherwise. Times that do not count steps (labels, non-integers) pass unchecked."""
    steps: list[tuple[int | None, str]] = [(i, when[i]) for i in index]
    if times.label is None or len(index) < 2:
        return steps
    keys = [times.keys[i] for i in index]
    diffs = Counter(b - a for a, b in pairwise(keys))
    most = max(diffs.values())
    step = min(d for d, n in diffs.items() if n == most)  # ties: the smallest, so the larger ones are the gaps
    out = steps[:1]
    for t in range(1, len(index)):
        gap = keys[t] - keys[t - 1]
        if gap > step:
            a, b = when[index[t - 1]], when[index[t]]
            if not fill:
                raise DataError(
                    f"{where}: missing time steps between {a} and {b}; "
                    "pass --fill-gaps to insert them as missing values"
                )
            if gap % step:
                raise DataError(
                    f"{where}: cannot fill the gap between {a} and {b}: it is not a whole number of the series' steps "
                    f"(the most common step is {times.label(keys[0])} to {times.label(keys[0] + step)})"
                )
            out.extend((None, times.label(k)) for k in range(keys[t - 1] + step, keys[t], step))
        out.append(steps[t])
    return out


def window_starts(lengths: list[int], span: int) -> list[tuple[int, int]]:
    """Every (series, start) whose window of ``span`` steps lies inside that series' training part."""
    return [(i, s) for i, n in enumerate(lengths) for s in range(n - span + 1)]
