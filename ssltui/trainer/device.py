"""Device choice and the speed settings that go with it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ssltui.core.config import RuntimeConfig, check_device
from ssltui.core.errors import ConfigError
from ssltui.trainer.cudagraph import CudaGraphs, GraphBackend


@dataclass
class DeviceSettings:
    """The device and the runtime settings every phase reads: precision, memory layout, graph
    capture of the training step (`graphs`: the backend, None for eager steps), and the
    cadence of log points and checkpoints in seconds."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    compile: bool
    eval_batch_size: int = 1024
    graphs: GraphBackend | None = None
    log_seconds: float = 0.25
    checkpoint_seconds: float = 60.0

    def autocast(self):
        """bf16 autocast on CUDA (BatchNorm stays fp32 under autocast); nothing on CPU. With
        graph capture the cast cache is off, as torch's CUDA-graph notes ask (a captured cast
        must be recomputed at every replay, not served from a cache filled outside it)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, cache_enabled=self.graphs is None)

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        module.to(self.device)
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        return module

    def training_forward(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module a phase's training step calls: through torch.compile when
        `runtime.compile` is on (CUDA only). Shapes are fixed (the loop drops the last partial
        batch), so it compiles once; the plain module shares the parameters and is what
        checkpoints and evaluation use."""
        return torch.compile(model, dynamic=False) if self.compile else model

    def describe(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"


def pick_device(name: str, runtime: RuntimeConfig) -> DeviceSettings:
    """`auto` takes CUDA when there is one; `cuda` without one is an error."""
    check_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available (use --device cpu)")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        # device_count does not create a CUDA context: the scheduler checks its devices with it
        # before it starts worker processes.
        raise ConfigError(f"device {name}: there are only {torch.cuda.device_count()} CUDA devices here")
    device = torch.device(name)
    on_cuda = device.type == "cuda"
    amp = None
    if runtime.amp == "bf16" or (runtime.amp == "auto" and on_cuda):
        amp = torch.bfloat16
    if on_cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if runtime.cuda_graphs == "on" and not on_cuda:
        raise ConfigError(f"runtime.cuda_graphs = on needs a CUDA device, not {name} (use auto or off)")
    graphs = CudaGraphs(device) if on_cuda and runtime.cuda_graphs != "off" else None
    return DeviceSettings(
        device,
        amp,
        runtime.channels_last and on_cuda,
        runtime.compile and on_cuda,
        eval_batch_size(runtime.eval_batch_size, on_cuda),
        graphs,
        runtime.log_seconds,
        runtime.checkpoint_seconds,
    )


CPU_EVAL_BATCH = 128  # runtime.eval_batch_size = auto on the CPU (settings.py says why)
CUDA_EVAL_BATCH = 1024


def eval_batch_size(setting: int | str, on_cuda: bool) -> int:
    if isinstance(setting, int):
        return setting
    return CUDA_EVAL_BATCH if on_cuda else CPU_EVAL_BATCH


def peak_memory() -> dict:
    """Peak resident memory of this process and peak CUDA memory allocated, in MB."""
    import resource

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["cuda_peak_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    return out
