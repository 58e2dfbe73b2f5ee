"""``seqlab inspect RUN --text ...``: what a trained character model's units do, in the spirit of Karpathy, Johnson
& Fei-Fei (2015), "Visualizing and Understanding Recurrent Networks".

The gates and states come from seqlab.record on the bptt backend. For each unit of the chosen layer we correlate
its state (LSTM: the cell c; GRU and RNN: h) with simple properties of the text, character by character, and show
the best-matching units with the chosen ones: a heat map PNG (one row per unit and gate, one column per character)
and an HTML page in which each character is coloured by the unit's state and shows every value on hover.
"""

from __future__ import annotations

import html
from pathlib import Path

import torch

from .. import runs
from ..data.errors import DataError
from ..layers import record
from ..train import pyplot
from .task import load

GATES = {"lstm": ("f", "i", "o", "c"), "gru": ("z", "r", "n", "h"), "rnn": ("h",)}
STATE = {"lstm": "c", "gru": "h", "rnn": "h"}


def text_properties(text: str) -> dict[str, torch.Tensor]:
    """Per character: inside double quotes, inside brackets ( [ {, and position in the line (0 at line start)."""
    quote, depth, column = [], [], []
    inside, level, col = False, 0, 0
    for ch in text:
        if ch == '"':
            inside = not inside
        if ch in "([{":
            level += 1
        elif ch in ")]}":
            level = max(0, level - 1)
        quote.append(float(inside))
        depth.append(float(level > 0))
        column.append(float(col))
        col = 0 if ch == "\n" else col + 1
    return {"inside quotes": torch.tensor(quote), "inside brackets": torch.tensor(depth),
            "position in line": torch.tensor(column)}  # fmt: skip


def correlations(states: torch.Tensor, prop: torch.Tensor) -> torch.Tensor:
    """Pearson r of every unit's state (T, H) with a property (T,); 0 where either is constant."""
    s = states - states.mean(0)
    p = prop - prop.mean()
    denom = s.norm(dim=0) * p.norm()
    return torch.where(denom > 0, (s * p[:, None]).sum(0) / denom.clamp_min(1e-30), torch.zeros(()))


def inspect(run: str, text: str, units: list[int] | None, layer: int, out: Path, top: int = 3) -> dict:
    model, tokenizer, cfg = load(run)
    if cfg.model == "transformer":
        raise ValueError(f"{run}: inspect shows recurrent gates and cell states; this run is a transformer")
    if tokenizer.kind != "char":
        raise DataError(f"{run}: inspect reads one character per step; this run uses the {tokenizer.kind} tokenizer")
    if len(text) < 2:
        raise DataError("give a text of at least two characters to inspect")
    ids = torch.tensor([tokenizer.encode(text)])
    n_layers = cfg.layers
    k = layer if layer >= 0 else n_layers + layer
    if not 0 <= k < n_layers:
        raise ValueError(f"--layer must lie in [-{n_layers}, {n_layers - 1}], got {layer}")
    hidden = cfg.hidden
    bad = [u for u in units or [] if not 0 <= u < hidden]
    if bad:
        raise ValueError(f"--units must lie in [0, {hidden - 1}], got {bad}")
    with torch.no_grad(), record(model) as rec:  # recording needs no backward: gates are kept in forward
        model(ids)
    gates = {g: v[0] for g, v in rec.gates[f"backbone.rnn.l{k}"].items()}  # (T, H) each
    names = GATES[cfg.model]
    state = gates[STATE[cfg.model]]
    found = {}
    for prop, values in text_properties(text).items():
        r = correlations(state, values)
        order = r.abs().argsort(descending=True)[:top]
        found[prop] = [(int(u), float(r[u])) for u in order]
    chosen = list(dict.fromkeys((units or []) + [u for best in found.values() for u, _ in best[:1]]))
    out.mkdir(parents=True, exist_ok=True)
    heatmap(out / "gates.png", text, {u: {g: gates[g][:, u] for g in names} for u in chosen}, found)
    page(out / "gates.html", text, {u: {g: gates[g][:, u] for g in names} for u in chosen}, STATE[cfg.model], found)
    result = {
        "layer": k,
        "units": chosen,
        "tracking": {p: [{"unit": u, "r": r} for u, r in v] for p, v in found.items()},
    }
    runs.write_json(out / "units.json", result)
    return result


def heatmap(path: Path, text: str, values: dict[int, dict[str, torch.Tensor]], found: dict) -> None:
    plt = pyplot()
    if plt is None:
        return
    shown = text[:160]  # a readable width; the HTML page holds the whole text
    rows, labels = [], []
    for u, gates in values.items():
        for g, v in gates.items():
            v = v[: len(shown)]
            rows.append(torch.tanh(v) if g == "c" else v)  # c is unbounded; tanh(c) is what the output sees
            labels.append(f"unit {u} {'tanh(c)' if g == 'c' else g}")
    grid = torch.stack(rows).numpy()
    fig, ax = plt.subplots(figsize=(max(8, len(shown) * 0.11), 0.32 * len(rows) + 1.4))
    ax.imshow(grid, aspect="auto", cmap="coolwarm", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xticks(range(len(shown)), [c if c != "\n" else "⏎" for c in shown], fontsize=6, family="monospace")
    tracking = "; ".join(f"{p}: unit {v[0][0]} (r = {v[0][1]:+.2f})" for p, v in found.items())
    ax.set_title(f"gates and state per character (blue -1, red +1). Best tracking: {tracking}", fontsize=8)
    fig.tight_layout()
    runs.save_figure(fig, path, dpi=120)


def page(path: Path, text: str, values: dict[int, dict[str, torch.Tensor]], state: str, found: dict) -> None:
    """One block per unit; each character coloured by the unit's state, every gate value shown on hover."""

    def colour(v: float) -> str:
        v = max(-1.0, min(1.0, v))
        return f"rgba(220,60,40,{v:.2f})" if v > 0 else f"rgba(40,90,220,{-v:.2f})"

    blocks = []
    for u, gates in values.items():
        shade = torch.tanh(gates[state]) if state == "c" else gates[state]
        spans = []
        for t, ch in enumerate(text):
            tip = " ".join(f"{g}={float(v[t]):+.3f}" for g, v in gates.items())
            shown = "⏎<br>" if ch == "\n" else html.escape(ch)
            spans.append(f'<span title="{tip}" style="background:{colour(float(shade[t]))}">{shown}</span>')
        blocks.append(f"<h3>unit {u}</h3><pre>{''.join(spans)}</pre>")
    tracking = "".join(
        f"<li>{html.escape(p)}: " + ", ".join(f"unit {u} (r = {r:+.2f})" for u, r in v) + "</li>"
        for p, v in found.items()
    )
    runs.write_text(
        path,
        "<!doctype html><meta charset=utf-8><title>seqlab inspect</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{white-space:pre-wrap;font-size:14px;line-height:1.5}"
        "span{cursor:default}</style>"
        f"<h2>Units and the text</h2><p>Colour: the unit's {'tanh(c)' if state == 'c' else state} "
        "(red positive, blue negative). Hover a character for every gate.</p>"
        "<p>Units whose state best tracks a property of the text (Pearson r over the characters):</p>"
        f"<ul>{tracking}</ul>" + "".join(blocks),
    )


# ------------------------------------------------------------------------------------------------ the command
def add_parser(sub, common) -> None:
    ins = sub.add_parser("inspect", parents=[common],
                         help="gates and cell states of a character model over a text (PNG, HTML)")  # fmt: skip
    ins.add_argument("run")
    ins.add_argument("--text")
    ins.add_argument("--file", help="read the text from a file instead")
    ins.add_argument("--units", type=lambda t: [int(v) for v in t.split(",")], help="units to show (e.g. 3,17)")
    ins.add_argument("--layer", type=int, default=-1, help="which layer (default the last)")
    ins.add_argument("--out", help="folder to create (default RUN/inspect-<time>)")


def run(args) -> None:
    import time

    from ..data.text import read_text

    if (args.text is None) == (args.file is None):
        raise ValueError("give the text to inspect with --text or --file (one of them)")
    text = args.text if args.text is not None else read_text(Path(args.file))
    out = Path(args.out or Path(args.run) / f"inspect-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another --out")
    result = inspect(args.run, text, args.units, args.layer, out)
    print(f"layer {result['layer']}, units {', '.join(map(str, result['units']))}")
    for prop, best in result["tracking"].items():
        print(f"  {prop}: " + ", ".join(f"unit {b['unit']} (r = {b['r']:+.2f})" for b in best))
    print(f"written to {out}: gates.png, gates.html (hover a character), units.json")
