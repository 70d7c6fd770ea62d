"""The options `ssltui run` and `ssltui sweep` share, declared once as typer Annotated aliases:
a signature names the alias and its own default (`preset: Preset = DEFAULT_PRESET`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ssltui.core import registry

Preset = Annotated[
    Optional[str], typer.Option("--preset", "-p", help="preset name or .toml path (see `ssltui presets`)")
]
Method = Annotated[Optional[str], typer.Option("--method", help=" | ".join(registry.method_names()))]
Evaluation = Annotated[
    Optional[str], typer.Option("--evaluation", help=f"comma list of {', '.join(registry.evaluation_names())}")
]
Labels = Annotated[Optional[str], typer.Option("--labels", help="label fractions, e.g. 0.01,0.1")]
Seeds = Annotated[Optional[str], typer.Option("--seeds", help="seeds, e.g. 0,1,2 (a sweep's trial runs every seed)")]
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")]
Data = Annotated[
    Optional[str],
    typer.Option(
        "--data",
        help="cifar10 | synthetic | folder:PATH (folder or .tar.gz); "
        "default: the preset's data source (a joined sweep's "
        "own), else cifar10",
    ),
]
DataDir = Annotated[
    Optional[Path],
    typer.Option("--data-dir", help="download/cache dir (default: $SSLTUI_DATA_DIR or the user cache dir)"),
]
Sets = Annotated[
    list[str],
    typer.Option("--set", help="override a hyperparameter: key=value (repeatable; in a sweep, fixed for every trial)"),
]
RunsDir = Annotated[
    Optional[Path], typer.Option("--runs-dir", help="run store (default: $SSLTUI_RUNS_DIR or the user data dir)")
]
NoCache = Annotated[bool, typer.Option("--no-cache", help="do not reuse pretrained encoders from earlier runs")]
JsonOut = Annotated[bool, typer.Option("--json", help="print one JSON object as stdout's last line")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")]
