"""How numbers, times and user text read on screen: one helper each, shared by the CLI and the TUI.

Plain strings only (no rich, no torch), so CSV/markdown writers and log lines can use them too.
Accuracies are fractions in [0, 1] in the run store and percent in Table 1's model; `pct`
takes the fraction, `number` the percent.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable

from ssltui.core.events import fraction_label

MISSING = "-"
# C0 controls but tab/newline, DEL, C1 controls: an ESC in an error message must not reach the
# terminal as an escape sequence.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def number(v: float | None, digits: int = 2) -> str:
    """A percent value as a table prints it: '48.20', or '-' for nothing (or a non-number)."""
    return f"{v:.{digits}f}" if _finite(v) else MISSING


def pct(frac: float | None, digits: int = 2) -> str:
    """A fraction in [0, 1] as percent without the sign: 0.482 -> '48.20'."""
    return number(100 * frac, digits) if _finite(frac) else MISSING


def label_fraction(frac: float | None) -> str:
    """A label fraction as the paper writes it: 0.01 -> '1%', 0.005 -> '0.5%' ('?' for a non-number)."""
    return fraction_label(frac) if _finite(frac) else "?"


def label_fractions(fracs: Iterable[float], sep: str = ",") -> str:
    """'1%,10%', or '-' for none."""
    return sep.join(label_fraction(f) for f in fracs) or MISSING


def cell(mean: float | None, std: float | None, digits: int = 2) -> str:
    """Mean ± sample std over seeds: '55.00 ± 7.07'; one seed has no std: '55.00'."""
    if not _finite(mean):
        return MISSING
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if _finite(std) else f"{mean:.{digits}f}"


def diff(d: float | None, digits: int = 2) -> str:
    """A signed difference in points: '+4.46', '-1.15'."""
    return f"{d:+.{digits}f}" if _finite(d) else MISSING


def duration(seconds: float | None) -> str:
    """'1:02:03', '2:03', or '-'."""
    if not _finite(seconds) or seconds < 0:
        return MISSING
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def images_rate(images_per_s: float | None) -> str:
    """'812 img/s', '1.2k img/s', '222k img/s' (short enough for an 80-column progress line)."""
    if not _finite(images_per_s) or not images_per_s:
        return f"{MISSING} img/s"
    if images_per_s >= 10_000:
        return f"{images_per_s / 1000:.0f}k img/s"
    if images_per_s >= 1000:
        return f"{images_per_s / 1000:.1f}k img/s"
    return f"{images_per_s:.0f} img/s"


def seconds(s: float | None) -> str:
    """A phase time as the results table prints it: '12.3'."""
    return f"{s:.1f}" if _finite(s) else MISSING


def timestamp(t: float | None, short: bool = False) -> str:
    """Local time of an epoch second: '2026-01-01 12:00', or short '01-01 12:00'."""
    if not _finite(t) or t <= 0:
        return MISSING
    return time.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M", time.localtime(t))


def plain(value: object, one_line: bool = True, limit: int | None = None) -> str:
    """User-given text (a group, a description, an error) made safe to show: control characters
    written out ('\\x1b'), line breaks folded to spaces when `one_line`, cut at `limit`.
    Rich markup is a separate danger: show the result as `rich.text.Text`, never as markup."""
    text = "" if value is None else str(value)
    if one_line:
        text = " ".join(text.split())
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    # Lone surrogates (a mis-decoded file name) cannot be encoded for the terminal.
    text = _SURROGATE.sub("\ufffd", text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text
