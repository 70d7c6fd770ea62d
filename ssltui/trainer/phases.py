"""Runs one node of the phase graph in this process: a pretraining, an evaluation or the
feature-map step. The same code serves `runtime.workers = 1` (the runner calls it in order) and
every worker process of the scheduler (each calls it for the nodes it is given).

A node emits its own events (Result, PhaseEnd) and returns an `Outcome`; it never writes
summary.json, which belongs to the one process that holds the run's lock. Pretrained encoders
pass between nodes through files (`encoders/` and the encoder cache), so an evaluation can run in
another process than its pretraining.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ssltui.core.config import RunConfig
from ssltui.core.errors import ConfigError, RunFailed, RunInterrupted
from ssltui.core.events import PhaseEnd, PhaseRef, Result, ResultRecord
from ssltui.core.graph import FEATUREMAPS, PhaseGraph, PhaseNode, digest, pretrain_identity
from ssltui.core.presets import Plan
from ssltui.trainer.checkpoint import load_checkpoint, load_state, require_keys, save_checkpoint
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.data.splits import label_subset
from ssltui.trainer.evaluation.common import EvalJob, Readout, encode, evaluator
from ssltui.trainer.loop import RunContext
from ssltui.trainer.models.resnet import Classifier, ResNet20


def pretrain_key(cfg: RunConfig, seed: int, bundle: DataBundle) -> str:
    """The encoder cache key: `pretrain_identity` and the data's fingerprint."""
    return digest({**pretrain_identity(cfg, seed), "data": bundle.fingerprint})


def get_pretrainer(method: str) -> Callable[..., ResNet20]:
    """`ssltui.trainer.methods.<method>.pretrain(ctx, info, cfg, bundle) -> ResNet20`."""
    try:
        module = importlib.import_module(f"ssltui.trainer.methods.{method}")
    except ModuleNotFoundError:
        raise ConfigError(f"method {method!r} has no pretraining implementation") from None
    return module.pretrain


@dataclass
class Outcome:
    """What a finished node tells the run's summary."""

    node: str
    phase: str | None = None  # the phase id (None for the feature-map step)
    timing: str | None = None  # the summary.timings kind its seconds count under
    seconds: float = 0.0
    cached: bool = False  # an encoder reused from this run or the cache: no time spent
    result: ResultRecord | None = None


class PhaseExecutor:
    """Runs graph nodes on one device with one loaded data bundle; keeps the encoders and
    their evaluation features it has made or loaded, so nodes sharing them pay once."""

    def __init__(self, ctx: RunContext, plan: Plan, graph: PhaseGraph, bundle: DataBundle, cache_dir: Path | None):
        self.ctx, self.plan, self.graph, self.bundle, self.cache_dir = ctx, plan, graph, bundle, cache_dir
        self.current: PhaseRef | None = None  # the phase being run (named when it stops or fails)
        self._batch_key = "the batch size"
        self._encoders: dict[str, ResNet20] = {}  # pretraining node -> encoder
        self._features: dict[tuple, dict] = {}  # (pretraining node, readout) -> {"val", "test"} features

    def run(self, node: PhaseNode) -> Outcome:
        """Run one node; on an exception `current` names the phase it stopped or failed in."""
        self.current = None
        if self.ctx.stop.requested:
            raise RunInterrupted(f"{self.ctx.stop.reason} between phases")
        try:
            if node.kind == "pretrain":
                return self._pretrain(node)
            if node.kind == FEATUREMAPS:
                return self._featuremaps(node)
            return self._evaluate(node)
        except torch.cuda.OutOfMemoryError:
            where = self.current.phase if self.current else node.name
            raise RunFailed(
                f"out of device memory in {where}; lower {self._batch_key} (or "
                f"runtime.eval_batch_size if it ran out while evaluating); the last checkpoint is "
                f"kept, and `ssltui resume {self.ctx.run.id}` continues from it"
            ) from None

    # ------------------------------------------------------------ pretraining
    def _encoder_files(self, node: PhaseNode) -> tuple[PhaseRef, str, Path, Path | None]:
        part = self.plan.parts[node.part]
        key = pretrain_key(part, node.seed, self.bundle)
        ref = PhaseRef.pretraining(part.method, node.seed, key)
        run_file = self.ctx.run.encoders_dir / f"{part.method}-seed{node.seed}-{key[:8]}.pt"
        cache_file = self.cache_dir / "encoders" / f"{key}.pt" if self.cache_dir else None
        return ref, key, run_file, cache_file

    def _load_encoder(self, *sources: Path | None) -> tuple[ResNet20, dict, Path] | None:
        """The encoder of the first of `sources` that exists (this run's file, then the cache)."""
        for source in sources:
            if source is None or not source.exists():
                continue
            encoder = ResNet20()
            try:
                ck = load_checkpoint(source, kind="encoder")
                require_keys(ck, ("encoder",), source)
                load_state(encoder, ck["encoder"], str(source))
            except ConfigError:
                if self.cache_dir is None or not source.is_relative_to(self.cache_dir):
                    raise
                # every run with these settings would stop here: say how to get past it
                raise ConfigError(
                    f"the cached encoder {source} cannot be loaded (damaged); delete that file to "
                    f"pretrain again, or run with --no-cache"
                ) from None
            self.ctx.dev.prepare(encoder)
            return encoder, ck, source
        return None

    def _pretrain(self, node: PhaseNode) -> Outcome:
        ref, key, run_file, cache_file = self._encoder_files(node)
        found = self._load_encoder(run_file, cache_file)
        if found is not None:
            encoder, ck, source = found
            self.ctx.log(f"reusing pretrained {ref.method} encoder (seed {ref.seed}) from {source}")
            if not run_file.exists():
                save_checkpoint(run_file, ck)
            self._encoders[node.name] = encoder
            self.ctx.emit(PhaseEnd(**ref.model_dump(), cached=True))
            return Outcome(node.name, ref.phase, cached=True)
        part = self.plan.parts[node.part]
        self.current, self._batch_key = ref, "pretrain.batch_size (--set pretrain.batch_size=N)"
        t0 = time.perf_counter()
        encoder = get_pretrainer(part.method)(self.ctx, ref, part, self.bundle)
        seconds = round(time.perf_counter() - t0, 3)
        ck = {
            "kind": "encoder",
            "method": part.method,
            "seed": node.seed,
            "key": key,
            "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        }
        save_checkpoint(run_file, ck)
        if cache_file is not None:
            save_checkpoint(cache_file, ck)
        self._encoders[node.name] = encoder
        self.ctx.emit(PhaseEnd(**ref.model_dump(), seconds=seconds))
        return Outcome(node.name, ref.phase, "pretrain", seconds)

    def encoder(self, name: str) -> ResNet20:
        """The encoder of pretraining node `name`, which is done (here or in another process)."""
        if name not in self._encoders:
            ref, _, run_file, cache_file = self._encoder_files(self.graph.node(name))
            found = self._load_encoder(run_file, cache_file)
            if found is None:
                raise RunFailed(f"the pretrained encoder of {ref.phase} is missing ({run_file})")
            self._encoders[name] = found[0]
        return self._encoders[name]

    def _eval_features(self, name: str, how: Readout | None = None) -> dict:
        """Validation and test features of an encoder (read as `how`, see `encode`), computed
        once for all its linear and kNN phases."""
        key = (name, how)
        if key not in self._features:
            enc, b, dev = self.encoder(name), self.bundle, self.ctx.dev
            self._features[key] = {
                "val": encode(enc, b.train_x[b.val_idx], b, dev, how),
                "test": encode(enc, b.test_x, b, dev, how),
            }
        return self._features[key]

    # ------------------------------------------------------------ evaluations
    def _evaluate(self, node: PhaseNode) -> Outcome:
        part, ev, frac, seed, b = self.plan.parts[node.part], node.evaluation, node.labels, node.seed, self.bundle
        ref = PhaseRef.evaluating(node.part, part.method, ev, frac, seed)
        encoder = self.encoder(node.needs[0]) if node.needs else None
        subset = torch.from_numpy(label_subset(b.labels_np(), b.train_idx.cpu().numpy(), frac, seed)).to(b.device)
        self.current, self._batch_key = ref, f"{ev}.batch_size (--set {ev}.batch_size=N)"
        job = EvalJob(
            self.ctx, ref, part.settings_of(ev), b, subset, encoder, lambda how: self._eval_features(node.needs[0], how)
        )
        t0 = time.perf_counter()
        out = evaluator(ev)(job)
        seconds = round(time.perf_counter() - t0, 3)
        result = ResultRecord(
            method=part.method,
            evaluation=ev,
            labels=frac,
            seed=seed,
            test_acc=round(float(out["test_acc"]), 6),
            val_acc=None if out.get("val_acc") is None else round(float(out["val_acc"]), 6),
            label_count=int(len(subset)),
            seconds=seconds,
            part=node.part,
            preset_description=part.description,
            probe=out.get("probe"),
        )
        self.ctx.emit(Result(**result.model_dump()))
        self.ctx.emit(PhaseEnd(**ref.model_dump(), seconds=seconds))
        return Outcome(node.name, ref.phase, ev, seconds, result=result)

    # ------------------------------------------------------------ feature maps
    def _trained_encoder(self, node: PhaseNode) -> ResNet20 | None:
        """The encoder a finished supervised phase trained: its final checkpoint's weights."""
        ref = PhaseRef.evaluating(node.part, node.method, node.kind, node.labels, node.seed)
        path = self.ctx.checkpoint_path(ref.phase)
        if not path.exists():
            self.ctx.log(f"no feature maps of {ref.label()}: its checkpoint {path} is gone", "warning")
            return None
        ck = load_checkpoint(path, kind="phase")
        model = Classifier(ResNet20(), self.bundle.num_classes)
        modules = ck.get("modules") or {}
        state = modules.get("model")
        if isinstance(modules.get("ema"), dict):  # a weight average is what the phase evaluated
            state = {k.removeprefix("module."): v for k, v in modules["ema"].items() if k.startswith("module.")}
        load_state(model, state, str(path))
        return self.ctx.dev.prepare(model).encoder

    def _featuremaps(self, node: PhaseNode) -> Outcome:
        from ssltui.trainer.featuremaps import save_featuremaps

        models = []
        for name, source in node.sources:
            src = self.graph.node(source)
            enc = self.encoder(source) if src.kind == "pretrain" else self._trained_encoder(src)
            if enc is not None:
                models.append((name, src.method, src.seed, enc))
        save_featuremaps(self.ctx.run, self.bundle, models, self.ctx.dev)
        return Outcome(node.name)
