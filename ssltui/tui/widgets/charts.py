"""Live training charts (textual-plotext): loss, learning rate and monitored accuracy of a phase."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from ssltui.core.events import ACCURACY_NAMES
from ssltui.tui.runstate import PhaseState


class PhaseChart(PlotextPlot):
    """One curve family of one phase; `show(phase)` redraws it."""

    def __init__(self, what: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.what = what  # loss | lr | acc

    def show(self, phase: PhaseState | None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        titles = {"loss": "loss", "lr": "learning rate", "acc": "accuracy %"}
        plt.title(titles[self.what])
        if phase is not None:
            if self.what in ("loss", "lr"):
                xs = sorted(phase.steps)
                if not xs:  # only epoch records (e.g. a run reopened from a summary)
                    xs = sorted(phase.epoch_records)
                    ys = [getattr(phase.epoch_records[x], self.what) for x in xs]
                    plt.xlabel("epoch")
                    by_step = False
                else:
                    ys = [phase.steps[x][0 if self.what == "loss" else 1] for x in xs]
                    plt.xlabel("step")
                    by_step = True
                if xs:
                    parts = self._loss_parts(phase, by_step) if self.what == "loss" else []
                    plt.plot(xs, ys, marker="braille", label="loss" if parts else None)
                    for name, (pxs, pys) in parts:
                        plt.plot(pxs, pys, marker="braille", label=name)
                    self._short_yticks(ys + [y for _, (_, pys) in parts for y in pys])
            else:
                for key, curve in phase.accuracy().items():
                    plt.plot(
                        [e for e, _ in curve],
                        [100 * a for _, a in curve],
                        marker="braille",
                        label=ACCURACY_NAMES.get(key, key),
                    )
                plt.xlabel("epoch")  # the legend names the monitor (validation, kNN, rotation)
        self.refresh()

    @staticmethod
    def _loss_parts(phase: PhaseState, by_step: bool) -> list[tuple[str, tuple[list[int], list[float]]]]:
        """Each weighted part of a loss of several (VICReg's three): its epoch means, at each
        epoch's last step (or at the epoch, when the chart's x is epochs)."""
        parts: dict[str, tuple[list[int], list[float]]] = {}
        for ep in sorted(phase.epoch_records):
            terms = phase.epoch_records[ep].loss_terms or {}
            for name, value in terms.items():
                xs, ys = parts.setdefault(name, ([], []))
                xs.append(ep * phase.steps_per_epoch if by_step else ep)
                ys.append(value)
        return list(parts.items())

    def _short_yticks(self, ys: list[float], n: int = 4) -> None:
        """Three significant digits on the y axis (plotext's own labels eat narrow charts)."""
        lo, hi = min(ys), max(ys)
        if hi > lo:
            ticks = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
            self.plt.yticks(ticks, [f"{t:.3g}" for t in ticks])


# Distinct colours (Tableau 10) and, for terminals without colour, distinct marker characters.
SERIES_COLOURS = (
    (78, 121, 167),
    (242, 142, 43),
    (225, 87, 89),
    (118, 183, 178),
    (89, 161, 79),
    (237, 201, 72),
    (176, 122, 161),
    (255, 157, 167),
    (156, 117, 95),
    (186, 176, 172),
)
SERIES_MARKERS = "•x+o*#%@"


def series_style(i: int, color: bool) -> tuple[tuple[int, int, int], str]:
    """(colour, marker) of series number `i`: braille lines in colour, characters without."""
    return SERIES_COLOURS[i % len(SERIES_COLOURS)], "braille" if color else SERIES_MARKERS[i % len(SERIES_MARKERS)]


class OverlayChart(PlotextPlot):
    """Several runs' or phases' curves on one chart; the legend is drawn beside it (`legend_text`)
    so that no label is clipped however narrow the chart."""

    log_y = False  # the y axis on a log scale (values <= 0 are left out there)

    def show(
        self, title: str, xlabel: str, series: list[tuple[list[float], list[float]]], color: bool, log_y: bool = False
    ) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel(xlabel)
        self.log_y = log_y
        for i, (xs, ys) in enumerate(series):
            if log_y:
                xs, ys = [x for x, y in zip(xs, ys) if y > 0], [y for y in ys if y > 0]
            if xs:
                rgb, marker = series_style(i, color)
                plt.plot(xs, ys, marker=marker, color=rgb if color else "default")
        if log_y:
            plt.yscale("log")
        self.refresh()
