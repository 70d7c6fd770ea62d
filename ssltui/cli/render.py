"""Plots for the terminal (plotext). No torch. The tables are in `ssltui.view.tables`."""

from __future__ import annotations

from collections import defaultdict

from ssltui.engine.events import ACCURACY_KEYS, Epoch


def curves_plot(epochs: list[Epoch], width: int = 100, height: int = 22) -> str:
    """plotext plot of the epoch loss of every phase and its monitored accuracy."""
    import plotext as plt

    by_phase: dict[str, dict[int, Epoch]] = defaultdict(dict)
    for e in epochs:
        by_phase[e.phase][e.epoch] = e  # a later record (after a resume) wins
    if not by_phase:
        return "(no epochs recorded yet)"
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.subplots(1, 2)
    plt.subplot(1, 1)
    plt.title("loss")
    for phase, recs in by_phase.items():
        xs = sorted(recs)
        plt.plot(xs, [recs[x].loss for x in xs], label=recs[xs[0]].label()[-28:])
    plt.subplot(1, 2)
    plt.title("accuracy % (validation)")
    for phase, recs in by_phase.items():
        for key in ACCURACY_KEYS:
            xs = sorted(x for x in recs if getattr(recs[x], key) is not None)
            if xs:
                plt.plot(xs, [100 * getattr(recs[x], key) for x in xs], label=f"{key} {recs[xs[0]].label()[-20:]}")
    out = plt.build()
    plt.clear_figure()
    return out
