"""The settings that differ between compared runs: each run's resolved configuration flattened to
dotted keys (a study's parts named by their method), the keys whose values are not all the same."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from ssltui.view.format import plain


def flatten(config: dict) -> dict[str, str]:
    """A run's config.toml as {key: value text}: the run options at the top, each part's sections
    under `section.key` (prefixed by `method:` when the run has several parts)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if key not in ("parts", "description") and not isinstance(value, dict):
            out[key] = str(value)
    parts = config.get("parts") or []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        prefix = f"{part.get('method', '?')}:" if len(parts) > 1 else ""
        for key, value in part.items():
            if isinstance(value, dict):
                for name, v in value.items():
                    out[f"{prefix}{key}.{name}"] = str(v)
            else:
                out[f"{prefix}{key}"] = str(value)
    return out


def differing(configs: dict[str, dict]) -> list[tuple[str, list[str]]]:
    """(key, the value in each run, '-' where a run has no such key) for every key whose values
    are not all the same, in the first run's order."""
    flat = {rid: flatten(c) for rid, c in configs.items()}
    keys = list(dict.fromkeys(k for f in flat.values() for k in f))
    out = []
    for key in keys:
        values = [flat[rid].get(key, "-") for rid in flat]
        if len(set(values)) > 1:
            out.append((key, values))
    return out


def differing_table(configs: dict[str, dict], short: dict[str, str] | None = None) -> Text | Table:
    """What differs between the runs' settings, as a table (a run per column)."""
    if len(configs) < 2:
        return Text("")
    rows = differing(configs)
    if not rows:
        return Text("settings: the same in every run compared", style="dim")
    table = Table(title="settings that differ", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("setting", no_wrap=True)
    for rid in configs:
        table.add_column(plain((short or {}).get(rid, rid)), overflow="fold")
    for key, values in rows:
        table.add_row(plain(key), *(plain(v, limit=40) for v in values))
    return table
