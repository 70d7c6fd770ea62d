"""The registries of pretraining methods and evaluations: every list of their names (the config
schema, `--method`, the forms, the graph, the table's row order) is derived from here.

A method is declared by one torch-free module in `ssltui.core.methods` (`METHOD = Method(...)`,
with its settings section); its training is `ssltui.trainer.methods.<name>.pretrain`. An
evaluation likewise: `ssltui.core.evaluations.<name>.EVALUATION` and
`ssltui.trainer.evaluation.<name>.evaluate`. docs/architecture.md lists the files of adding one.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass
from typing import TypeVar

from ssltui.core.settings import Section, TrainConfig


@dataclass(frozen=True)
class Method:
    """A pretraining method (or the supervised baseline, which pretrains nothing)."""

    name: str  # the `--method` value, and the name of its settings section
    title: str  # as tables show it: "SimCLR"
    summary: str  # one line, for forms and help
    settings: type[Section] | None  # its `[name]` table of settings, or None
    evaluations: tuple[str, ...]  # the evaluations that apply after it
    default_evaluations: tuple[str, ...]
    reads: tuple[str, ...]  # the config sections its pretraining reads
    order: int  # its place in tables and forms
    pretrains: bool = True  # False: no encoder to pretrain (the supervised baseline)
    # The weighted parts of a loss of several (the epoch events carry each part's mean, the live
    # loss chart draws them beside the total); () for a loss of one part.
    loss_terms: tuple[str, ...] = ()
    short: str = ""  # a short name where several are joined ("rot"); default the name


@dataclass(frozen=True)
class Evaluation:
    """A way to turn an encoder (or nothing) and a labelled subset into an accuracy."""

    name: str  # the `--evaluation` value, and the name of its settings section
    title: str  # as tables show it: "Linear"
    summary: str
    settings: type[Section]
    order: int
    needs_encoder: bool = True  # False: trains from scratch (the supervised baseline)
    short: str = ""  # a short name where several are joined ("lin"); default the name
    default_probe: str | None = None  # how a result recorded without its probe was read

    @property
    def trains(self) -> bool:
        """Whether it trains for epochs (its settings are a training phase's)."""
        return issubclass(self.settings, TrainConfig)


D = TypeVar("D", Method, Evaluation)


def _declared(package: str, attr: str, kind: type[D]) -> list[D]:
    module = importlib.import_module(package)
    found = [
        getattr(importlib.import_module(f"{package}.{info.name}"), attr)
        for info in pkgutil.iter_modules(module.__path__)
        if not info.name.startswith("_")
    ]
    wrong = [d for d in found if not isinstance(d, kind)]
    if wrong:
        raise TypeError(f"{package}: {attr} must be a {kind.__name__}, got {wrong[0]!r}")
    return sorted(found, key=lambda d: (d.order, d.name))


@functools.cache
def methods() -> tuple[Method, ...]:
    """Every registered method, in table order."""
    return tuple(_declared("ssltui.core.methods", "METHOD", Method))


@functools.cache
def evaluations() -> tuple[Evaluation, ...]:
    """Every registered evaluation, in table order."""
    found = tuple(_declared("ssltui.core.evaluations", "EVALUATION", Evaluation))
    names = {e.name for e in found}
    for m in methods():
        unknown = set(m.evaluations) - names
        if unknown or not set(m.default_evaluations) <= set(m.evaluations):
            raise RuntimeError(f"method {m.name!r} names evaluations that are not registered: {sorted(unknown)}")
    return found


def method_names() -> tuple[str, ...]:
    return tuple(m.name for m in methods())


def evaluation_names() -> tuple[str, ...]:
    return tuple(e.name for e in evaluations())


def method(name: str) -> Method:
    """The method registered as `name` (KeyError otherwise)."""
    return {m.name: m for m in methods()}[name]


def evaluation(name: str) -> Evaluation:
    """The evaluation registered as `name` (KeyError otherwise)."""
    return {e.name: e for e in evaluations()}[name]


def short_name(name: str) -> str:
    """A method's or evaluation's short name ("sup", "rot", "lin"); unknown names as they are."""
    specs: dict[str, Method | Evaluation] = {**{e.name: e for e in evaluations()}, **{m.name: m for m in methods()}}
    spec = specs.get(name)
    return (spec.short or spec.name) if spec else name


def train_sections() -> tuple[str, ...]:
    """The config sections that describe a training phase (epochs, optimizer, schedule)."""
    return ("pretrain", *(e.name for e in evaluations() if e.trains))
