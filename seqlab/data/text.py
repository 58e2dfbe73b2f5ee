"""Where text comes from: a file, a directory (recursively, with a glob), or a corpus that ships with every Python.

Built-in corpora (no download):
- ``pydoc``: Python's documentation topics (``pydoc_data.topics``), ~465 K characters of English prose and code.
- ``stdlib``: the standard library's own ``.py`` sources (tests and site-packages left out), ~12 M characters.
Both vary with the Python version, so every source records a SHA-256 of exactly the text it yields.
"""

from __future__ import annotations

import hashlib
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError

BUILTIN = ("pydoc", "stdlib")


@dataclass
class TextSource:
    """A named sequence of documents, read lazily one file at a time so a corpus need not fit in memory."""

    name: str
    paths: list[Path] = field(default_factory=list)  # empty for pydoc
    errors: str = "strict"  # 'strict' refuses non-UTF-8 bytes; 'replace' turns them into U+FFFD

    def documents(self) -> Iterator[str]:
        if self.name == "builtin:pydoc":
            from pydoc_data.topics import topics

            for key in sorted(topics):
                yield topics[key]
            return
        for path in self.paths:
            yield read_text(path, self.errors)

    def sha256(self) -> str:
        h = hashlib.sha256()
        for doc in self.documents():
            h.update(doc.encode("utf-8", "surrogatepass"))
        return h.hexdigest()


def read_text(path: Path, errors: str = "strict") -> str:
    """One file's text (a directory is a corpus for ``open_source``, not a file for this)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    nul = data.find(b"\x00", 0, 8192)
    if nul >= 0:
        raise DataError(f"{path}: looks binary (NUL byte at offset {nul}); expected UTF-8 text")
    try:
        return data.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 at byte offset {e.start} ({data[e.start : e.start + 4]!r}); "
            "pass --encoding-errors replace to replace bad bytes"
        ) from None


def open_source(spec: str, glob: str = "**/*", errors: str = "strict") -> TextSource:
    """'pydoc' | 'stdlib' | a file | a directory (files matching ``glob`` below it, sorted)."""
    if spec in BUILTIN:
        if spec == "pydoc":
            return TextSource("builtin:pydoc")
        root = Path(sysconfig.get_paths()["stdlib"])
        paths = sorted(
            p
            for p in root.rglob("*.py")
            if "site-packages" not in p.parts and "test" not in p.parts and "tests" not in p.parts
        )
        return TextSource("builtin:stdlib", paths, errors)
    path = Path(spec)
    if path.is_file():
        return TextSource(str(path), [path], errors)
    if path.is_dir():
        paths = sorted(p for p in path.glob(glob) if p.is_file() and not any(s.startswith(".") for s in p.parts))
        if not paths:
            raise DataError(f"{path}: no files match {glob!r} in this directory")
        return TextSource(str(path), paths, errors)
    raise DataError(f"{spec}: no such file or directory (built-in corpora: {', '.join(BUILTIN)})")
