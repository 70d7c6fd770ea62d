"""Executes a plan: data, pretraining (once per method, seed and settings), evaluations.

Everything the run produces goes to its folder in the run store; progress goes to a listener
callback as typed events (the same ones appended to metrics.jsonl). Nothing is printed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import socket
import sys
import time
import tomllib
import traceback
from pathlib import Path
from typing import Callable

import torch

import ssltui
from ssltui.engine.checkpoint import load_checkpoint, load_state, require_keys, save_checkpoint
from ssltui.engine.config import RunConfig, RunOptions, build_run_config, dumps_toml, to_dict
from ssltui.engine.data.bundle import DataBundle, make_bundle
from ssltui.engine.data.sources import RawData, load_source
from ssltui.engine.data.splits import label_subset
from ssltui.engine.device import pick_device
from ssltui.engine.errors import ConfigError, RunFailed, RunInterrupted, SsltuiError, first_line
from ssltui.engine.evaluation.common import encode
from ssltui.engine.evaluation.finetune import train_classifier
from ssltui.engine.evaluation.knn import knn_accuracy
from ssltui.engine.evaluation.linear import linear_probe
from ssltui.engine.events import (SCHEMA_VERSION, DataLoaded, PhaseEnd, PhaseRef, PhaseStart, Result,
                                  ResultRecord, RunEnd, RunStart)
from ssltui.engine.loop import Listener, RunContext
from ssltui.engine.models.resnet import ResNet20
from ssltui.engine.paths import data_dir as default_data_dir
from ssltui.engine.presets import Plan
from ssltui.engine.store import RunDir, atomic_write_json, atomic_write_text
from ssltui.engine.summary import PhaseRecord, RunSummary


def plan_to_toml(plan: Plan, opts: RunOptions) -> str:
    doc = {"preset": plan.preset, "description": plan.description, **opts.to_toml_dict(),
           "parts": [to_dict(p) for p in plan.parts]}
    return dumps_toml(doc, "ssltui resolved run configuration (every hyperparameter)")


def plan_from_toml(run: RunDir) -> tuple[Plan, RunOptions]:
    """The plan and options a run was started with (so a resume by id needs nothing else)."""
    text = run.read_config_text()
    try:
        raw = tomllib.loads(text)
        parts = [build_run_config(p) for p in raw["parts"]]
        opts = RunOptions.model_validate(raw)
    except (KeyError, TypeError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"{run.config_path}: unreadable run configuration ({first_line(exc)[:120]})") from None
    except ConfigError as exc:
        raise ConfigError(f"{run.config_path}: {exc.message}") from None
    return Plan(raw.get("preset", "?"), raw.get("description", ""), parts), opts


def versions() -> dict:
    out = {"ssltui": ssltui.__version__, "python": platform.python_version(), "torch": torch.__version__}
    try:
        import torchvision

        out["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        out["cuda"] = torch.version.cuda
    return out


def peak_memory() -> dict:
    """Peak resident memory of this process and peak CUDA memory allocated, in MB."""
    import resource

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["cuda_peak_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    return out


def pretrain_identity(cfg: RunConfig, seed: int) -> dict:
    """What determines a pretrained encoder besides the data: method, its settings and the seed."""
    return {"method": cfg.method, "pretrain": cfg.pretrain.identity(), "method_cfg": to_dict(getattr(cfg, cfg.method)),
            "seed": seed, "version": ssltui.__version__}


def pretrain_key(cfg: RunConfig, seed: int, bundle: DataBundle) -> str:
    """The encoder cache key: `pretrain_identity` and the data's fingerprint."""
    ident = {**pretrain_identity(cfg, seed), "data": bundle.fingerprint}
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def get_pretrainer(method: str) -> Callable[..., ResNet20]:
    """`ssltui.engine.methods.<method>.pretrain(ctx, info, cfg, bundle) -> ResNet20`."""
    try:
        module = importlib.import_module(f"ssltui.engine.methods.{method}")
    except ModuleNotFoundError:
        raise ConfigError(f"method {method!r} has no pretraining implementation") from None
    return module.pretrain


class Runner:
    """Runs a plan into a run folder. `execute()` returns the final summary."""

    def __init__(self, plan: Plan, run: RunDir, opts: RunOptions, listener: Listener | None = None,
                 cache_dir: Path | None = None, raw: RawData | None = None):
        self.plan, self.run, self.opts = plan, run, opts
        self.raw = raw  # data the caller loaded already (before making the run folder)
        self.listener = listener
        self.cache_dir = cache_dir if opts.use_cache else None
        self.ctx: RunContext | None = None
        self.summary = RunSummary()
        self._encoders: dict[str, ResNet20] = {}
        self._featuremap_models: list[tuple[str, str, int, ResNet20]] = []
        self._pending_stop: str | None = None
        self._phase_name = "setup"
        self._phase_batch_key = "the batch size"

    # ------------------------------------------------------------ control
    def request_stop(self, reason: str = "interrupted") -> None:
        """Ask the run to stop after the current step (thread- and signal-safe)."""
        self._pending_stop = reason
        if self.ctx is not None:
            self.ctx.request_stop(reason)

    # ------------------------------------------------------------ summary
    def _save_summary(self) -> None:
        self.run.write_summary(self.summary)

    def _new_summary(self) -> RunSummary:
        parts = self.plan.parts
        return RunSummary.new(
            run_id=self.run.id, preset=self.plan.preset, description=self.plan.description,
            group=self.opts.group or self.run.id, status="running",
            methods=sorted({p.method for p in parts}, key=["supervised", "simclr", "rotnet"].index),
            evaluations=sorted({e for p in parts for e in p.evaluation}),
            labels=sorted({f for p in parts for f in p.labels}),
            seeds=sorted({s for p in parts for s in p.seeds}),
            data=self.opts.data, started=time.time())

    def _resumed_summary(self) -> RunSummary:
        try:
            summary = self.run.read_summary()
        except (OSError, ValueError):
            summary = self._new_summary()  # absent or damaged: phases rerun from their checkpoints
        summary.status, summary.error, summary.ended = "running", None, None
        summary.resumes += 1
        return summary

    # ------------------------------------------------------------ main
    def execute(self, resume: bool = False) -> RunSummary:
        run = self.run
        with run.lock():
            if resume:
                self.summary = self._resumed_summary()
                run.tidy_after_crash()
            else:
                if run.config_path.exists():
                    # Another process claimed this folder between our check and our lock.
                    raise ConfigError(f"run {run.id} already exists; never overwritten")
                atomic_write_text(run.config_path, plan_to_toml(self.plan, self.opts))
                self.summary = self._new_summary()
            self.summary.pid, self.summary.host = os.getpid(), socket.gethostname()
            self.summary.versions, self.summary.argv = versions(), sys.argv[1:]
            wall_t0 = time.perf_counter()
            self._save_summary()
            try:
                self._execute()
                self.summary.status = "completed"
            except RunInterrupted as exc:
                self._end("interrupted", exc.message)
                raise
            except SsltuiError as exc:
                self._end("failed", exc.message)
                raise
            except torch.cuda.OutOfMemoryError:
                msg = (f"out of device memory in {self._phase_name}; lower {self._phase_batch_key} "
                       f"(or runtime.eval_batch_size if it ran out while evaluating); the last "
                       f"checkpoint is kept, and `ssltui resume {run.id}` continues from it")
                self._end("failed", msg)
                raise RunFailed(msg) from None
            except Exception as exc:  # noqa: BLE001 - recorded in the log and summary, one line to the user
                with open(run.log_path, "a", encoding="utf-8") as fh:
                    traceback.print_exc(file=fh)
                msg = f"{type(exc).__name__}: {first_line(exc, '')} (see {run.log_path})"
                self._end("failed", msg)
                raise RunFailed(msg) from None
            finally:
                self.summary.ended, self.summary.pid = time.time(), None
                self.summary.add_timing("wall", time.perf_counter() - wall_t0)
                self.summary.memory = peak_memory()
                try:
                    self._save_summary()
                    if self.ctx is not None:
                        self.ctx.emit(RunEnd(status=self.summary.status, error=self.summary.error))
                except (SsltuiError, OSError):
                    # A full disk must not hide the error that ended the run; the summary
                    # left on disk says "running", which `ssltui runs` shows as stale.
                    pass
        return self.summary

    def _end(self, status: str, error: str) -> None:
        self.summary.status, self.summary.error = status, error

    def _execute(self) -> None:
        first = self.plan.parts[0]
        dev = pick_device(self.opts.device, first.runtime)
        self.summary.device = dev.describe()
        self.ctx = ctx = RunContext(self.run, dev, self.listener)
        if self._pending_stop:
            ctx.request_stop(self._pending_stop)
        ctx.emit(RunStart(run_id=self.run.id, preset=self.plan.preset, device=self.summary.device,
                          parts=len(self.plan.parts), phases=count_phases(self.plan),
                          schema_version=SCHEMA_VERSION))
        bundle = self._load_data(first)
        for part in self.plan.parts[1:]:
            if (part.data.val_fraction, part.data.split_seed) != (first.data.val_fraction, first.data.split_seed):
                raise ConfigError("data.val_fraction/split_seed must be the same in every part of a study")
        # Every label subset is drawn now, so `--labels 0.95` on too small a data set fails in
        # a second instead of after hours of pretraining.
        for part in self.plan.parts:
            for seed in part.seeds:
                for frac in part.labels:
                    label_subset(bundle.labels_np(), bundle.train_idx.cpu().numpy(), frac, seed)

        for pi, part in enumerate(self.plan.parts):
            for seed in part.seeds:
                encoder = None
                if part.method != "supervised":
                    encoder = self._pretrained(part, seed, bundle)
                    if seed == part.seeds[0]:
                        self._remember_featuremaps(part.method, part.method, seed, encoder)
                feats = self._eval_features(encoder, bundle, part) if encoder is not None else {}
                for frac in part.labels:
                    subset = self._subset(bundle, frac, seed)
                    for ev in part.evaluation:
                        self._evaluate(pi, part, ev, frac, seed, bundle, subset, encoder, feats)
        if self.plan.parts[0].runtime.featuremaps and self._featuremap_models:
            from ssltui.engine.featuremaps import save_featuremaps

            save_featuremaps(self.run, bundle, self._featuremap_models, dev)

    def _load_data(self, first: RunConfig) -> DataBundle:
        ctx = self.ctx
        t0 = time.perf_counter()
        raw = self.raw
        if raw is None:
            raw = load_source(self.opts.data, default_data_dir(self.opts.data_dir),
                              first.data.synthetic_train_per_class, first.data.synthetic_test_per_class,
                              log=ctx.log, should_stop=lambda: ctx.stop_requested and (ctx.stop_reason or True))
        bundle = make_bundle(raw, ctx.device, first.data.val_fraction, first.data.split_seed)
        self.summary.add_timing("data", time.perf_counter() - t0 + (raw.load_seconds if self.raw is not None else 0.0))
        ctx.emit(DataLoaded(source=raw.source, train=int(len(bundle.train_idx)), val=int(len(bundle.val_idx)),
                            test=int(len(bundle.test_y)), classes=bundle.classes,
                            decode_seconds=round(raw.decode_seconds, 3), load_seconds=round(raw.load_seconds, 3),
                            from_cache=raw.from_cache, notes=raw.notes))
        return bundle

    # ------------------------------------------------------------ pieces
    def _check_stop(self) -> None:
        if self.ctx is not None and self.ctx.stop_requested:
            raise RunInterrupted(f"{self.ctx.stop_reason} between phases")

    def _remember_featuremaps(self, name: str, method: str, seed: int, encoder: ResNet20) -> None:
        if all(n != name for n, *_ in self._featuremap_models):
            self._featuremap_models.append((name, method, seed, encoder))

    def _subset(self, bundle: DataBundle, frac: float, seed: int) -> torch.Tensor:
        idx = label_subset(bundle.labels_np(), bundle.train_idx.cpu().numpy(), frac, seed)
        path = self.run.labels_dir / f"labels{frac:g}-seed{seed}.json"
        if not path.exists():
            atomic_write_json(path, {"fraction": frac, "seed": seed, "count": int(len(idx)),
                                     "indices": idx.tolist()})
        return torch.from_numpy(idx).to(bundle.device)

    def _eval_features(self, encoder: ResNet20, bundle: DataBundle, part: RunConfig) -> dict:
        if "linear" not in part.evaluation and "knn" not in part.evaluation:
            return {}
        dev = self.ctx.dev
        return {"val": encode(encoder, bundle.train_x[bundle.val_idx], bundle, dev),
                "test": encode(encoder, bundle.test_x, bundle, dev)}

    def _cached_encoder(self, ref: PhaseRef, key: str, run_file: Path) -> ResNet20 | None:
        """The encoder this run or an earlier one already pretrained with these settings."""
        cache_file = self.cache_dir / "encoders" / f"{key}.pt" if self.cache_dir else None
        for source in (run_file, cache_file):
            if source is None or not source.exists():
                continue
            ck = load_checkpoint(source, kind="encoder")
            require_keys(ck, ("encoder",), source)
            encoder = ResNet20()
            load_state(encoder, ck["encoder"], str(source))
            self.ctx.dev.prepare(encoder)
            self.ctx.log(f"reusing pretrained {ref.method} encoder (seed {ref.seed}) from {source}")
            if not run_file.exists():
                save_checkpoint(run_file, ck)
            self.summary.phases.setdefault(ref.phase, PhaseRecord(cached=True))
            self.ctx.emit(PhaseEnd(**ref.model_dump(), cached=True))
            return encoder
        return None

    def _pretrained(self, part: RunConfig, seed: int, bundle: DataBundle) -> ResNet20:
        key = pretrain_key(part, seed, bundle)
        if key in self._encoders:
            return self._encoders[key]
        self._check_stop()
        ref = PhaseRef.pretraining(part.method, seed, key)
        run_file = self.run.encoders_dir / f"{part.method}-seed{seed}-{key[:8]}.pt"
        encoder = self._cached_encoder(ref, key, run_file)
        if encoder is None:
            self._phase_name, self._phase_batch_key = ref.phase, "pretrain.batch_size (--set pretrain.batch_size=N)"
            t0 = time.perf_counter()
            encoder = get_pretrainer(part.method)(self.ctx, ref, part, bundle)
            seconds = time.perf_counter() - t0
            ck = {"kind": "encoder", "method": part.method, "seed": seed, "key": key,
                  "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()}}
            save_checkpoint(run_file, ck)
            if self.cache_dir is not None:
                save_checkpoint(self.cache_dir / "encoders" / f"{key}.pt", ck)
            self._phase_done(ref, "pretrain", seconds)
        self._encoders[key] = encoder
        return encoder

    def _phase_done(self, ref: PhaseRef, timing: str, seconds: float) -> None:
        self.summary.add_timing(timing, seconds)
        self.summary.phases[ref.phase] = PhaseRecord(seconds=round(seconds, 3))
        self.ctx.emit(PhaseEnd(**ref.model_dump(), seconds=round(seconds, 3)))
        self._save_summary()

    def _evaluate(self, pi: int, part: RunConfig, ev: str, frac: float, seed: int, bundle: DataBundle,
                  subset: torch.Tensor, encoder: ResNet20 | None, feats: dict) -> None:
        ctx = self.ctx
        ref = PhaseRef.evaluating(pi, part.method, ev, frac, seed)
        done = self.summary.phases.get(ref.phase)
        if done is not None and done.status == "done":
            return
        self._check_stop()
        section = {"supervised": "supervised", "semi": "semi", "linear": "linear"}.get(ev, "knn")
        self._phase_name = ref.phase
        self._phase_batch_key = f"{section}.batch_size (--set {section}.batch_size=N)"
        t0 = time.perf_counter()
        if ev == "supervised":
            out = train_classifier(ctx, ref, part.supervised, bundle, subset, None)
            if frac == max(part.labels) and seed == part.seeds[0]:
                self._remember_featuremaps("supervised", "supervised", seed, out["model"].encoder)
        elif ev == "semi":
            out = train_classifier(ctx, ref, part.semi, bundle, subset, encoder)
        elif ev == "linear":
            out = linear_probe(ctx, ref, part.linear, bundle, subset, encoder, feats)
        else:
            out = self._knn(ref, part, bundle, subset, encoder, feats)
        seconds = time.perf_counter() - t0
        result = ResultRecord(method=part.method, evaluation=ev, labels=frac, seed=seed,
                              test_acc=round(float(out["test_acc"]), 6),
                              val_acc=None if out.get("val_acc") is None else round(float(out["val_acc"]), 6),
                              label_count=int(len(subset)), seconds=round(seconds, 3), part=pi,
                              preset_description=part.description, probe=out.get("probe"))
        self.summary.results = [r for r in self.summary.results if r.key() != result.key()] + [result]
        ctx.emit(Result(**result.model_dump()))
        self._phase_done(ref, ev, seconds)

    def _knn(self, ref: PhaseRef, part: RunConfig, bundle: DataBundle, subset: torch.Tensor,
             encoder: ResNet20, feats: dict) -> dict:
        self.ctx.emit(PhaseStart(**ref.model_dump(), epochs=1, steps_per_epoch=1))
        bank = encode(encoder, bundle.train_x[subset], bundle, self.ctx.dev)
        labels = bundle.train_y[subset]

        def acc(query: torch.Tensor, query_labels: torch.Tensor) -> float:
            return knn_accuracy(query, query_labels, bank, labels, bundle.num_classes, part.knn.k,
                                part.knn.temperature)

        return {"test_acc": acc(feats["test"], bundle.test_y),
                "val_acc": acc(feats["val"], bundle.train_y[bundle.val_idx])}


def describe_phases(plan: Plan) -> list[str]:
    """Every phase the plan runs, in order, with its epochs: one pretraining per distinct method
    settings and seed (shared by the parts that agree on them), then each evaluation at each
    label fraction and seed."""
    out, seen = [], set()
    for pi, part in enumerate(plan.parts):
        for seed in part.seeds:
            ident = json.dumps(pretrain_identity(part, seed), sort_keys=True)
            if part.method != "supervised" and ident not in seen:
                seen.add(ident)
                out.append(f"{part.method}/pretrain/seed{seed} ({part.pretrain.epochs} epochs)")
            for frac in part.labels:
                for ev in part.evaluation:
                    ref = PhaseRef.evaluating(pi, part.method, ev, frac, seed)
                    epochs = getattr(part, ev).epochs if ev in ("supervised", "semi", "linear") else 0
                    out.append(ref.phase + (f" ({epochs} epochs)" if epochs else ""))
    return out


def count_phases(plan: Plan) -> int:
    return len(describe_phases(plan))
