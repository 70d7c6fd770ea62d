"""Plots for the terminal (plotext). No torch. The tables are in `ssltui.view.tables`.

Each chart is as wide as the terminal and carries no legend of its own (plotext cuts labels to
the chart's width): every curve has a marker character and, on a colour terminal, a colour, and
the legend under the chart names them in full. Without colour (a pipe, NO_COLOR) no escape code
is written and the markers tell the curves apart.
"""

from __future__ import annotations

from rich.text import Text

from ssltui.core.events import Epoch
from ssltui.view.curves import Curve, phase_curves
from ssltui.view.format import plain

# (xterm-256 colour, marker) per curve
SERIES = ((12, "•"), (9, "x"), (10, "+"), (13, "o"), (11, "*"), (14, "#"), (208, "%"), (250, "@"))
CHART_HEIGHT = 14


def _chart(title: str, series: list[tuple[list[int], list[float]]], width: int, color: bool) -> str:
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, CHART_HEIGHT)
    plt.title(title)
    plt.xlabel("epoch")
    if not color:
        plt.theme("clear")  # no escape codes at all
    for i, (xs, ys) in enumerate(series):
        colour, marker = SERIES[i % len(SERIES)]
        if xs:
            plt.plot(xs, ys, marker=marker, color=colour if color else "default")
    out = plt.build()
    plt.clear_figure()
    return out if color else Text.from_ansi(out).plain  # the clear theme still ends lines with a reset code


def _legend(curves: list[tuple[int, Curve]], color: bool, width: int, what: str = "") -> Text:
    """The curves' markers and names, as many a line as fit (no name broken over two lines)."""
    lines: list[Text] = []
    for i, c in curves:
        colour, marker = SERIES[i % len(SERIES)]
        entry = Text(marker * 2, style=f"color({colour})" if color else "")
        entry.append(" " + plain(c.label) + (f" ({c.acc_name})" if what and c.acc_name else ""))
        if lines and lines[-1].cell_len + 3 + entry.cell_len <= width:
            lines[-1].append("   ")
            lines[-1].append_text(entry)
        else:
            lines.append(entry)
    return Text("\n").join(lines)


def curves_report(epochs: list[Epoch], width: int = 100, color: bool = True) -> list[str | Text]:
    """The epoch loss and monitored accuracy of every phase: charts (plotext text) and their
    legends, at most len(SERIES) curves a chart."""
    curves = phase_curves(epochs)
    if not curves:
        return ["(no epochs recorded yet)"]
    out: list[str | Text] = []
    n = len(SERIES)
    for start in range(0, len(curves), n):
        group = curves[start : start + n]
        part = f" ({start // n + 1}/{(len(curves) + n - 1) // n})" if len(curves) > n else ""
        out += [
            _chart(f"loss per epoch{part}", [(c.epochs, c.loss) for c in group], width, color),
            _legend(list(enumerate(group)), color, width),
        ]
        if any(c.acc_epochs for c in group):
            out += [
                _chart(
                    f"monitored accuracy % per epoch{part}", [(c.acc_epochs, c.accuracy) for c in group], width, color
                ),
                _legend([(i, c) for i, c in enumerate(group) if c.acc_epochs], color, width, what="accuracy"),
            ]
    return out
