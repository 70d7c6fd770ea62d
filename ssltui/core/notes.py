"""A run's note and tags (notes.json): what the researcher says about a run. Written only by the
faces (`ssltui note`, `ssltui tag`, the app), atomically, beside the summary the trainer owns."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ssltui.core.errors import ConfigError

TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,31}")
MAX_TAGS = 16
MAX_NOTE = 2000


class RunNotes(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    note: str = Field("", max_length=MAX_NOTE)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for tag in v:
            if not TAG.fullmatch(tag):
                raise ValueError(f"tag {tag!r} is not 1-32 letters, digits or _.:+- (starting with a letter or digit)")
        if len(set(v)) != len(v):
            raise ValueError("a tag is given twice")
        return v

    @classmethod
    def checked(cls, **values: Any) -> RunNotes:
        """RunNotes, or a one-line ConfigError naming the first problem."""
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"] if isinstance(p, str)) or "notes"
            raise ConfigError(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None


def parse_notes(data: bytes) -> RunNotes:
    """notes.json as read; a damaged file reads as no notes (it hides nothing else of the run)."""
    try:
        return RunNotes.model_validate_json(data)
    except ValidationError:
        return RunNotes()
