"""Public data sets that install with a package, never downloaded at run time: the UCR/UEA classification archive
splits that aeon ships, and single forecasting series from statsmodels and pmdarima.

These packages are heavy (aeon pulls numba), so they are optional extras and imported only here, on first use; a
missing one is a DataError that names the extra to install.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError
from .sequences import series_from_arrays
from .tables import Table


def load_ucr(name: str, split: str) -> Table:
    """One split ('train' or 'test') of a UCR/UEA data set that aeon ships inside its package, as a series Table."""
    try:
        from aeon.datasets import load_classification
    except ImportError:
        raise DataError("the UCR/UEA archive is read through aeon: pip install 'seqlab[aeon]'") from None
    X, y = load_classification(name, split=split)
    series, names = series_from_arrays(X, f"{name} {split}")
    return Table("series", series, list(y), names, [str(i) for i in range(len(series))])


# name: (season m, horizon H, what it is)
SERIES = {
    "airpassengers": (12, 12, "monthly airline passengers 1949-1960 (pmdarima), 144 steps"),
    "co2": (12, 24, "Mauna Loa CO2, monthly means of the weekly record 1958-2001 (statsmodels), 526 steps"),
    "sunspots": (11, 11, "yearly sunspot activity 1700-2008 (statsmodels), 309 steps; m = the 11-year cycle"),
}


def load_series(name: str) -> np.ndarray:
    """One of SERIES as float64 (T,), from the package that ships it."""
    try:
        if name == "airpassengers":
            from pmdarima.datasets import load_airpassengers

            return np.asarray(load_airpassengers(), dtype=np.float64)
        if name == "co2":
            from statsmodels.datasets import co2

            weekly = co2.load_pandas().data["co2"]
            return weekly.resample("MS").mean().interpolate().to_numpy(dtype=np.float64)
        if name == "sunspots":
            from statsmodels.datasets import sunspots

            return sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)
    except ImportError:
        raise DataError("these series ship with statsmodels and pmdarima: pip install 'seqlab[forecast]'") from None
    raise DataError(f"unknown series {name!r}; expected one of {', '.join(SERIES)}")


# name: (season m, horizon H, what it is)
COLLECTIONS = {
    "m1-yearly": (1, 6, "the M1 competition's 181 yearly series (aeon ships the Monash .tsf), 15-58 steps"),
    "quarterly": (
        4,
        8,
        "13 quarterly series, 89-211 steps: the ten positive US macro series of statsmodels' "
        "macrodata (1959-2009) and Australian beer, residents and wool (pmdarima)",
    ),
}
MACRO = ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "tbilrate", "unemp", "pop")


def read_tsf(path) -> list[np.ndarray]:
    """The series of a Monash forecasting archive .tsf file (header lines start with # or @, then one series a line:
    name:start:v1,v2,...), as float64 arrays; missing values ('?') are refused."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        body = False
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.lower() == "@data":
                body = True
                continue
            if not body:
                continue
            values = line.rsplit(":", 1)[-1].split(",")
            if "?" in values:
                raise DataError(f"line {n} of {path}: missing values, which these benchmarks do not expect")
            out.append(np.array(values, dtype=np.float64))
    if not out:
        raise DataError(f"{path}: no series after @data")
    return out


def load_collection(name: str) -> list[np.ndarray]:
    """One of COLLECTIONS as a list of float64 (T_i,) arrays, from the package that ships it (no download)."""
    if name not in COLLECTIONS:
        raise DataError(f"unknown collection {name!r}; expected one of {', '.join(COLLECTIONS)}")
    if name == "quarterly":
        try:
            from pmdarima.datasets import load_ausbeer, load_austres, load_woolyrnq
            from statsmodels.datasets import macrodata
        except ImportError:
            raise DataError("the quarterly collection ships with statsmodels and pmdarima: pip install "
                            "'seqlab[forecast]'") from None  # fmt: skip
        macro = macrodata.load_pandas().data
        out = [macro[c].to_numpy(dtype=np.float64) for c in MACRO]
        for load in (load_ausbeer, load_austres, load_woolyrnq):
            y = np.asarray(load(), dtype=np.float64)
            out.append(y[: len(y) - np.argmax(np.isfinite(y[::-1]))])  # ausbeer ends in a missing quarter
        return out
    try:
        import aeon
    except ImportError:
        raise DataError("the M1 collection ships with aeon: pip install 'seqlab[aeon]'") from None
    from pathlib import Path

    return read_tsf(Path(aeon.__file__).parent / "datasets" / "data" / "m1_yearly_dataset" / "m1_yearly_dataset.tsf")


# The packages of Python's standard library whose docstrings make the text benchmark's classes.
DOCSTRING_PACKAGES = ("asyncio", "email", "unittest", "xml", "multiprocessing", "http", "importlib", "tkinter",
                      "idlelib", "logging", "urllib", "concurrent")  # fmt: skip


def load_docstrings(split: str) -> Table:
    """A text classification set that every Python installation has: the first paragraph of each function, class
    and method docstring in DOCSTRING_PACKAGES of the standard library (tests left out), labelled by its package;
    'train' or 'test' (every fifth docstring of each package, in the order of sorted paths and of the source).
    Texts of at least 30 characters, whitespace collapsed, each text once; they vary with the Python version, so
    the bench records their hash."""
    import ast
    import sysconfig
    from pathlib import Path

    if split not in ("train", "test"):
        raise DataError(f"split must be train or test, got {split!r}")
    root = Path(sysconfig.get_paths()["stdlib"])
    texts, labels, seen = [], [], set()
    for package in DOCSTRING_PACKAGES:
        k = 0
        for path in sorted(p for p in (root / package).rglob("*.py") if not {"test", "idle_test"} & set(p.parts)):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    doc = ast.get_docstring(node)
                    text = " ".join(doc.split("\n\n")[0].split()) if doc else ""
                    if len(text) >= 30 and text not in seen:
                        seen.add(text)
                        if (k % 5 == 4) == (split == "test"):
                            texts.append(text)
                            labels.append(package)
                        k += 1
    names = [f"docstring {i} ({split})" for i in range(len(texts))]
    return Table("text", texts, labels, names, [str(i) for i in range(len(texts))])
