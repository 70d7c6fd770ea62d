"""The building blocks of the run configuration: a `Section` (a table of settings that refuses
unknown keys, wrong types and out-of-range values), the training-phase settings every trained
phase shares, and the run-wide `data` and `runtime` tables. Method and evaluation declarations
(`ssltui.core.methods`, `ssltui.core.evaluations`) build their own sections from these."""

from __future__ import annotations

import tomllib
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def parse_literal(text: str) -> Any:
    """Parse a `--set` value as a TOML literal; fall back to a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _listify(value: Any) -> Any:
    """`--set a=1,2` and `--set a=1` both give a list: split a string on commas, wrap a scalar."""
    if isinstance(value, str):
        return [parse_literal(v.strip()) for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def check_text(value: Any) -> Any:
    """Strings end up in TOML and JSON files, which must be UTF-8: refuse undecodable bytes
    (a non-UTF-8 path on the command line arrives as lone surrogates)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("is not valid UTF-8 text") from None
    return value


def _positive_or_auto(v: Any) -> Any:
    """A whole number >= 1, or "auto" (bool is an int to Python, not here)."""
    if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
        return v
    raise ValueError("is not a whole number >= 1 or 'auto'")


def not_negative(v: int) -> int:
    if v < 0:
        raise ValueError("is negative")
    return v


T = TypeVar("T")
# A list setting that `--set a=1,2` (comma-separated) and `--set a=1` (one value) both give.
CommaList = Annotated[list[T], BeforeValidator(_listify)]


Text = Annotated[str, BeforeValidator(check_text)]


class Section(BaseModel):
    """A table of settings: unknown keys, wrong types and out-of-range values are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# TrainConfig fields that say when a phase validates or saves, not what it learns.
CADENCE_FIELDS = ("checkpoint_every", "val_passes", "eval_every")
MAX_EPOCHS = 100_000  # 100x the longest schedule in the literature (SimCLR's 1,000 epochs)
MAX_STEPS = 10_000_000  # min_steps: about 100 days at 1 step a second


class TrainConfig(Section):
    """One optimisation phase: epochs, batch, optimizer and learning-rate schedule."""

    # Upper bounds: a count no run could finish (2e8 epochs, 1e12 steps) is refused when the
    # configuration is resolved, before a run folder or a sweep exists, not after it has filled memory.
    epochs: int = Field(100, ge=1, le=MAX_EPOCHS, description="passes over the phase's training images")
    min_steps: int = Field(0, ge=0, le=MAX_STEPS, description="train at least this many steps (tiny label subsets)")
    batch_size: int = Field(128, ge=1, description="images per optimizer step")
    optimizer: Literal["sgd", "lars", "adamw"] = Field("sgd", description="sgd | lars | adamw")
    lr: float = Field(0.1, gt=0.0, description="peak learning rate (after scaling)")
    lr_scaling: Literal["none", "linear", "sqrt"] = Field(
        "none", description="none | linear (lr*batch/256) | sqrt (lr*sqrt(batch))"
    )
    momentum: float = Field(0.9, ge=0.0, le=0.9999, description="SGD/LARS momentum")
    lars_trust_coefficient: float = Field(
        0.001, gt=0.0, description="LARS eta: an adapted layer's step is lr x eta x |w|/|g|"
    )
    nesterov: bool = Field(False, description="Nesterov momentum (SGD)")
    weight_decay: float = Field(5e-4, ge=0.0, le=1.0, description="L2 weight decay")
    schedule: Literal["cosine", "step", "constant"] = Field("cosine", description="cosine | step | constant")
    warmup_epochs: float = Field(0.0, ge=0.0, description="linear warm-up length in epochs")
    milestones: CommaList[float] = Field([], description="epochs at which a step schedule multiplies lr by gamma")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="step-schedule factor")
    checkpoint_every: int = Field(
        0,
        ge=0,
        description=(
            "also save a checkpoint every N epochs (0: by runtime.checkpoint_seconds; phase ends and stops always save)"
        ),
    )
    val_passes: int = Field(
        20,
        ge=0,
        description=("validation (or monitor) passes spread evenly over the phase's steps, the last at its end"),
    )

    def items_per_image(self) -> int:
        """Training items each image gives the phase (a probe's augmented copies add more)."""
        return 1

    def identity(self) -> dict[str, Any]:
        """The settings that determine the trained weights: how often the phase validates or
        saves is left out (neither touches the weights or the random draws)."""
        return self.model_dump(mode="python", exclude=set(CADENCE_FIELDS))


class ClassifierConfig(TrainConfig):
    """Training a classifier on the labelled subset (the baseline, or fine-tuning)."""

    augment: bool = Field(True, description="random crop (padding 4) and horizontal flip")
    cutout: int = Field(
        0, ge=0, le=32, description="side of a square zeroed at a random place in each training image (0: off)"
    )
    frozen_stages: int = Field(0, ge=0, le=3, description="stem and first N stages frozen (weights and BN statistics)")
    frozen_bn_stats: bool = Field(
        True,
        description="frozen stages keep their BatchNorm statistics (false: "
        "they adapt to the labelled images, weights still frozen)",
    )
    label_smoothing: float = Field(0.0, ge=0.0, le=0.5, description="cross-entropy label smoothing")
    ema: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="decay of an exponential moving average of the weights, "
        "evaluated instead of the last weights (0: off)",
    )
    eval_every: int = Field(0, ge=0, description="validation every N epochs instead (0: by val_passes)")


class DataConfig(Section):
    val_fraction: float = Field(0.1, gt=0.0, le=0.5, description="held-out validation part of the training split")
    split_seed: int = Field(0, ge=0, description="seed of the validation split (fixed across runs)")
    synthetic_train_per_class: int = Field(300, ge=4, description="synthetic source: training images per class")
    synthetic_test_per_class: int = Field(100, ge=1, description="synthetic source: test images per class")


class RuntimeConfig(Section):
    amp: Literal["auto", "bf16", "off"] = Field("auto", description="auto (bf16 on CUDA) | bf16 | off")
    channels_last: bool = Field(True, description="channels_last memory format on CUDA")
    compile: bool = Field(False, description="torch.compile every phase's training forward on CUDA")
    # On the CPU a batch of 1,024 spends as long in the kernel as in compute: each activation of
    # 64 MB is mapped and faulted in anew (glibc maps blocks over 32 MB). docs/results.md.
    eval_batch_size: Annotated[int | Literal["auto"], BeforeValidator(_positive_or_auto)] = Field(
        "auto", description="batch size for feature extraction and testing (auto: 1024 on CUDA, 128 on the CPU)"
    )
    cuda_graphs: Literal["auto", "on", "off"] = Field(
        "auto", description="replay each phase's training step from a CUDA graph (auto: on CUDA; on needs CUDA)"
    )
    log_seconds: float = Field(0.25, ge=0.0, description="seconds between progress log points (0: every step)")
    checkpoint_seconds: float = Field(
        60.0,
        ge=0.0,
        description=("seconds between checkpoints inside a phase (0: none; phase ends and stops always save)"),
    )
    featuremaps: bool = Field(True, description="save feature-map thumbnails at the end of the run")
    workers: Annotated[int | Literal["auto"], BeforeValidator(_positive_or_auto)] = Field(
        "auto", description="phases side by side, one process each (auto: one per device)"
    )
