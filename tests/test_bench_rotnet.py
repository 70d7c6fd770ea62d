"""The RotNet throughput benchmark runs both pipelines (needs benchmarks/common.py from the SimCLR work)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps on a small shared box: one thread is many times faster
    if not (BENCH / "common.py").is_file():
        pytest.skip("benchmarks/common.py is absent")
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_rotnet
    import common

    yield bench_rotnet, common
    for name in ("bench_rotnet", "common"):
        sys.modules.pop(name, None)
    torch.set_num_threads(threads)


def test_both_pipelines_time_steps_of_four_views_per_image(bench):
    bench_rotnet, common = bench
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    on_device = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    data = common.BenchData(images, on_device, torch.full((3,), 0.5), torch.full((3,), 0.25), "random")
    opts = common.BenchOptions(torch.device("cpu"), workers=0, steps=1, warmup=0, batch_size=4)
    for fn in (bench_rotnet.ours, bench_rotnet.usual):
        m = fn(data, opts)
        assert m.steps == 1 and m.views_per_step == 16 and m.seconds > 0
    assert bench_rotnet.ours(data, opts).flops_per_step > 0


def test_usual_collate_builds_the_same_rotations(bench):
    bench_rotnet, _ = bench
    from ssltui.engine.rotation import all_rotations

    batch = [torch.rand(3, 8, 8) for _ in range(3)]
    x, y = bench_rotnet._rotate_collate(batch)
    ref_x, ref_y = all_rotations(torch.stack(batch))
    assert torch.equal(x, ref_x) and torch.equal(y, ref_y)
