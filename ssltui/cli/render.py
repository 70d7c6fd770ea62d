"""Plots for the terminal (plotext). No torch. The tables are in `ssltui.view.tables`."""

from __future__ import annotations

from collections import defaultdict


def curves_plot(metrics: list[dict], width: int = 100, height: int = 22) -> str:
    """plotext plot of the epoch loss of every phase and its monitored accuracy."""
    import plotext as plt

    epochs: dict[str, dict[int, dict]] = defaultdict(dict)
    for m in metrics:
        # A hand-edited or foreign line lacking these is skipped, not a crash.
        if m.get("event") == "epoch" and isinstance(m.get("phase"), str) and isinstance(m.get("epoch"), int) \
                and isinstance(m.get("loss"), (int, float)):
            epochs[m["phase"]][m["epoch"]] = m  # a later record (after a resume) wins
    if not epochs:
        return "(no epochs recorded yet)"
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.subplots(1, 2)
    plt.subplot(1, 1)
    plt.title("loss")
    for phase, recs in epochs.items():
        xs = sorted(recs)
        plt.plot(xs, [recs[x]["loss"] for x in xs], label=phase[-28:])
    plt.subplot(1, 2)
    plt.title("accuracy % (validation)")
    for phase, recs in epochs.items():
        for key in ("val_acc", "knn_acc", "rot_acc"):
            xs = sorted(x for x in recs if isinstance(recs[x].get(key), (int, float)))
            if xs:
                plt.plot(xs, [100 * recs[x][key] for x in xs], label=f"{key} {phase[-20:]}")
    out = plt.build()
    plt.clear_figure()
    return out
