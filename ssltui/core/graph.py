"""A study as a graph of phases: what a plan runs, and what each phase waits for.

Each pretraining (one per distinct method settings and seed, `pretrain_identity`) feeds the
evaluations that use its encoder; supervised phases stand alone; the feature-map step needs
the encoders it draws. The node order is the sequential order (`runtime.workers = 1` runs the
nodes in it); the scheduler runs any node whose needs are done.

Torch-free: `ssltui run --dry-run` and the TUI use it without loading torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ssltui
from ssltui.core import registry
from ssltui.core.config import RunConfig, to_dict
from ssltui.core.events import PhaseRef
from ssltui.core.presets import Plan
from ssltui.core.schedule import PhaseLength, phase_length, split_counts, subset_size

FEATUREMAPS = "featuremaps"


def pretrain_identity(cfg: RunConfig, seed: int) -> dict[str, Any]:
    """What determines a pretrained encoder besides the data: method, its settings and the seed."""
    return {
        "method": cfg.method,
        "pretrain": cfg.pretrain.identity(),
        "method_cfg": to_dict(cfg.method_settings) if cfg.method_settings else {},
        "seed": seed,
        "version": ssltui.__version__,
    }


def digest(identity: dict[str, Any], length: int = 16) -> str:
    """The one hash of an identity (a pretraining's, a run's): sha1 of its canonical JSON."""
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class PhaseNode:
    """One step of the graph. `name` is unique in the graph: an evaluation's phase id, or for a
    pretraining `<method>/pretrain/seed<s>#<settings hash>` (its phase id also names the data,
    which only the loaded bundle knows). `part` is the plan part whose settings it runs."""

    name: str
    kind: str  # pretrain | supervised | linear | semi | knn | featuremaps
    part: int
    method: str
    seed: int
    labels: float | None = None
    evaluation: str | None = None
    epochs: int = 0
    needs: tuple[str, ...] = ()
    sources: tuple[tuple[str, str], ...] = ()  # featuremaps: (model name, node it comes from)

    @property
    def is_phase(self) -> bool:
        """A training phase (counted in `RunStart.phases`); the feature-map step is not one."""
        return self.kind != FEATUREMAPS

    def describe(self) -> str:
        """'rotnet/pretrain/seed0 (100 epochs)', 'p2-rotnet/semi/labels0.1/seed0 (30 epochs)'."""
        base = self.name.split("#")[0]
        return base + (f" ({self.epochs} epochs)" if self.epochs else "")


@dataclass
class PhaseGraph:
    nodes: list[PhaseNode]
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    _unblocks: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {n.name: i for i, n in enumerate(self.nodes)}
        self._unblocks = {n.name: len(self.dependants(n.name)) for n in self.nodes}

    def node(self, name: str) -> PhaseNode:
        return self.nodes[self._index[name]]

    def order(self, name: str) -> int:
        """The node's place in the sequential order (unknown names last)."""
        return self._index.get(name, len(self.nodes))

    @property
    def phases(self) -> list[PhaseNode]:
        return [n for n in self.nodes if n.is_phase]

    def dependants(self, name: str) -> set[str]:
        """Every node that waits for `name`, directly or through others."""
        out: set[str] = set()
        frontier = [name]
        while frontier:
            cur = frontier.pop()
            for n in self.nodes:
                if cur in n.needs and n.name not in out:
                    out.add(n.name)
                    frontier.append(n.name)
        return out

    def width(self, nodes: list[PhaseNode]) -> int:
        """How many of `nodes` can run at once, at most (phases at the same depth of the graph)."""
        names = {n.name for n in nodes}
        depth: dict[str, int] = {}
        for n in nodes:  # the node order is topological: needs come first
            depth[n.name] = 1 + max((depth[d] for d in n.needs if d in names), default=-1)
        levels = [depth[n.name] for n in nodes if n.is_phase]
        return max((levels.count(d) for d in set(levels)), default=0)

    def ready(self, done: set[str], taken: set[str]) -> list[PhaseNode]:
        """Nodes whose needs are done and nobody has taken, the ones that unblock the most first
        (a pretraining before the evaluations that can already run), then in sequential order."""
        free = [n for n in self.nodes if n.name not in taken and n.name not in done and all(d in done for d in n.needs)]
        return sorted(free, key=lambda n: (-self._unblocks[n.name], self.order(n.name)))


def build_graph(plan: Plan) -> PhaseGraph:
    """The plan's phases in sequential order: per part and seed, the pretraining (the first part
    that needs it runs it, later ones with the same settings share it), then each evaluation at
    each label fraction; the feature-map step last."""
    nodes: list[PhaseNode] = []
    pretrain_of: dict[str, str] = {}  # identity hash -> node name
    maps: dict[str, str] = {}  # model name -> node name (the first seed of each method)
    for pi, part in enumerate(plan.parts):
        for seed in part.seeds:
            needs: tuple[str, ...] = ()
            if registry.method(part.method).pretrains:
                ident = digest(pretrain_identity(part, seed), 8)
                if ident not in pretrain_of:
                    pretrain_of[ident] = f"{part.method}/pretrain/seed{seed}#{ident}"
                    nodes.append(
                        PhaseNode(pretrain_of[ident], "pretrain", pi, part.method, seed, epochs=part.pretrain.epochs)
                    )
                needs = (pretrain_of[ident],)
                if seed == part.seeds[0]:
                    maps.setdefault(part.method, pretrain_of[ident])
            for frac in part.labels:
                for ev in part.evaluation:
                    ref = PhaseRef.evaluating(pi, part.method, ev, frac, seed)
                    epochs = part.settings_of(ev).epochs if registry.evaluation(ev).trains else 0
                    nodes.append(PhaseNode(ref.phase, ev, pi, part.method, seed, frac, ev, epochs, needs))
                    if not needs and frac == max(part.labels) and seed == part.seeds[0]:  # trained from scratch
                        maps.setdefault(part.method, ref.phase)
    if plan.runtime.featuremaps and maps:
        sources = tuple(maps.items())  # in the order the sequential run meets them
        nodes.append(PhaseNode(FEATUREMAPS, FEATUREMAPS, 0, "", 0, needs=tuple(s for _, s in sources), sources=sources))
    return PhaseGraph(nodes)


def describe_phases(plan: Plan) -> list[str]:
    """Every phase the plan runs, in sequential order, with its epochs."""
    return [n.describe() for n in build_graph(plan).phases]


def count_phases(plan: Plan) -> int:
    return len(build_graph(plan).phases)


def phase_lengths(plan: Plan, graph: PhaseGraph, class_counts: Sequence[int]) -> dict[str, tuple[PhaseLength, str]]:
    """Each training node's length on data of `class_counts` training images a class, and the
    section whose settings gave it: what the run will train, for the dry run."""
    out: dict[str, tuple[PhaseLength, str]] = {}
    for n in graph.phases:
        part = plan.parts[n.part]
        val_fraction = part.data.val_fraction
        if n.kind == "pretrain":
            section, items = "pretrain", sum(split_counts(class_counts, val_fraction))
        elif n.labels is not None and registry.evaluation(n.kind).trains:
            settings = part.settings_of(n.kind)
            section = n.kind
            items = subset_size(class_counts, val_fraction, n.labels) * settings.items_per_image()
        else:
            continue
        out[n.name] = (phase_length(part.settings_of(section), items), section)
    return out
