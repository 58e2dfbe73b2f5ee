"""The command line dispatches only: every command's parser comes from its own module, the shared flags are declared
once, and the package's floors import only downward (docs/architecture.md)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from seqlab.cli import COMMANDS, build_parser, main

PACKAGE = Path(__file__).resolve().parents[1] / "seqlab"
FLOORS = [("cells",), ("layers",), ("models", "data"), ("train", "checkpoint", "runs", "flags", "bench"),
          ("lm", "classify", "forecast", "autoencode", "gan", "lab"), ("export",), ("cli", "__main__")]  # fmt: skip


def test_python_dash_m_seqlab_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "seqlab", "--help"], capture_output=True, text=True, check=True)
    assert all(name in out.stdout for name in COMMANDS)


@pytest.mark.parametrize(
    "argv",
    [["bench"], ["lm", "sample", "RUN"], ["inspect", "RUN", "--text", "x"], ["lab", "adding"],
     ["classify", "predict", "RUN", "DATA", "--out", "o.csv"], ["forecast", "eval", "RUN", "DATA"],
     ["autoencode", "score", "RUN", "DATA", "--out", "o.csv"], ["gan", "sample", "RUN", "--out", "o.npz"]],
)  # fmt: skip
def test_every_command_takes_the_shared_flags_after_its_arguments(argv):
    assert build_parser().parse_args([*argv, "--threads", "3"]).threads == 3


def test_a_bad_shared_flag_is_one_line_for_every_command(capsys):
    assert main(["lm", "sample", "no-such-run", "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "seqlab lm: error: --threads must be at least 1, got 0\n"


def imports_of(path: Path) -> set[tuple[str, ...]]:
    """The seqlab modules a file imports, as paths inside the package (relative imports resolved)."""
    here = path.relative_to(PACKAGE).with_suffix("").parts
    package = here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            target = base + tuple(node.module.split(".")) if node.module else base
            found |= {(*target, a.name) if not node.module else target for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seqlab"):
            found.add(tuple(node.module.split("."))[1:])
    return {t for t in found if t}


def floor(parts: tuple[str, ...]) -> int:
    """The floor of a module; -1 for a name of the package itself (``from . import __version__``)."""
    return next((i for i, names in enumerate(FLOORS) if parts[0] in names), -1)


def test_lower_floors_never_import_higher_ones():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue  # the package's lazy re-exports
        for target in imports_of(path):
            if floor(target) > floor(parts):
                upward.append(f"{'/'.join(parts)} imports {'.'.join(target)}")
    assert not upward, upward


def test_the_import_graph_has_no_cycle():
    modules = {path.relative_to(PACKAGE).with_suffix("").parts: path for path in PACKAGE.rglob("*.py")}
    modules = {(p[:-1] if p[-1] == "__init__" else p): path for p, path in modules.items()}

    def module_of(target: tuple[str, ...]) -> tuple[str, ...] | None:
        while target and target not in modules:  # an imported name: its module is the prefix that is a file
            target = target[:-1]
        return target or None

    graph = {m: {module_of(t) for t in imports_of(path)} - {None, m} for m, path in modules.items() if m}
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(".".join(x) for x in [*path[path.index(m) :], m]))
        if m in done:
            return
        path.append(m)
        for n in graph.get(m, ()):
            visit(n)
        path.pop()
        done.add(m)

    for m in graph:
        visit(m)
