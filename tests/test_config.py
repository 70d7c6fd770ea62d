"""Presets, --set typing and validation: every bad value is a one-line ConfigError."""

from __future__ import annotations

import tomllib

import pytest

from ssltui.core.config import RunConfig, build_run_config, dumps_toml, parse_set_options, schema_keys, to_dict
from ssltui.core.errors import ConfigError, ExitCode
from ssltui.core.presets import list_presets, resolve


def test_shipped_presets_all_resolve():
    names = {p.name for p in list_presets()}
    assert {"supervised", "smoke"} <= names
    for info in list_presets():
        plan = resolve(info.name)
        assert plan.parts, info.name
        for part in plan.parts:
            assert part.description or plan.description


def test_supervised_he_preset_is_he_recipe():
    (cfg,) = resolve("supervised-he").parts
    s = cfg.supervised
    assert (s.optimizer, s.lr, s.momentum, s.weight_decay, s.batch_size) == ("sgd", 0.1, 0.9, 1e-4, 128)
    assert s.schedule == "step" and s.milestones == [91, 136] and s.gamma == 0.1 and s.label_smoothing == 0
    assert cfg.labels == [0.01, 0.1] and cfg.evaluation == ["supervised"]


def test_supervised_preset_is_the_recipe_chosen_on_validation():
    """docs/experiments/supervised-and-evaluation.md: batch 64, lr 0.05, wd 5e-3, cosine, label smoothing 0.1,
    and the same number of training images as He et al.'s 3,000 steps at batch 128."""
    (cfg,) = resolve("supervised").parts
    s = cfg.supervised
    assert (s.optimizer, s.lr, s.momentum, s.weight_decay, s.batch_size) == ("sgd", 0.05, 0.9, 5e-3, 64)
    assert s.schedule == "cosine" and s.label_smoothing == 0.1 and s.ema == 0 and s.cutout == 0
    assert s.min_steps * s.batch_size == 3000 * 128 and s.epochs == 182
    assert cfg.labels == [0.01, 0.1] and cfg.evaluation == ["supervised"]


def test_set_values_are_typed_from_the_schema():
    (cfg,) = resolve(
        "smoke",
        sets=[
            "supervised.lr=0.3",
            "supervised.epochs=3",
            "supervised.nesterov=true",
            "supervised.milestones=1,2",
            "runtime.amp=off",
        ],
    ).parts
    assert cfg.supervised.lr == 0.3 and isinstance(cfg.supervised.lr, float)
    assert cfg.supervised.epochs == 3 and cfg.supervised.nesterov is True
    assert cfg.supervised.milestones == [1.0, 2.0] and cfg.runtime.amp == "off"


@pytest.mark.parametrize(
    "option, fragment",
    [
        ("supervised.lr=-1", "supervised.lr"),
        ("supervised.lr=0", "supervised.lr"),
        ("supervised.batch_size=0", "supervised.batch_size"),
        ("supervised.epochs=abc", "expected an integer"),
        ("supervised.epochs=1.5", "expected an integer"),
        ("supervised.optimizer=rmsprop", "not one of"),
        ("supervised.lrr=0.1", "did you mean 'lr'"),
        ("nosection.lr=0.1", "unknown section"),
        ("lienar.lr=0.1", "unknown section in 'lienar.lr' (did you mean 'linear'?)"),
        (
            "lr=0.1",
            "settings are SECTION.KEY; did you mean 'pretrain.lr' or 'supervised.lr' or 'linear.lr' or 'semi.lr'?",
        ),
        ("temperature=0.2", "did you mean 'simclr.temperature' or 'moco.temperature' or 'knn.temperature'?"),
        ("seed=1", "unknown key 'seed' (did you mean 'seeds'?)"),
        ("foo=1", "or SECTION.KEY with sections barlow, byol, data, knn, linear"),
        ("supervised.lr", "expected key=value"),
        ("labels=1.5", "outside (0, 1]"),
        ("semi.frozen_stages=4", "semi.frozen_stages"),
        ("supervised.milestones=500", "supervised.milestones"),
    ],
)
def test_bad_set_values_name_the_key(option, fragment):
    with pytest.raises(ConfigError) as err:
        resolve("smoke", sets=[option])
    assert fragment in err.value.message
    assert "\n" not in err.value.message
    assert err.value.exit_code == ExitCode.USAGE


def test_method_evaluation_pairs():
    with pytest.raises(ConfigError, match="does not apply to method 'supervised'"):
        resolve("smoke", evaluation=["linear"])
    with pytest.raises(ConfigError, match="not one of"):
        resolve("smoke", method="swav")
    (cfg,) = resolve("smoke", method="rotnet").parts
    assert cfg.method == "rotnet" and cfg.evaluation == ["linear", "semi"]
    (cfg,) = resolve("smoke", method="simclr", evaluation=["knn", "linear"]).parts
    assert cfg.evaluation == ["knn", "linear"]


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown preset 'nope'; known: .*smoke"):
        resolve("nope")


def test_preset_file_with_unknown_key(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('method = "supervised"\n[supervised]\nepochz = 3\n')
    with pytest.raises(ConfigError, match="supervised.epochz"):
        resolve(str(p))


def test_resolved_config_round_trips_through_toml():
    cfg = build_run_config({"method": "simclr", "evaluation": ["linear", "semi"], "labels": [0.01]})
    text = dumps_toml({"parts": [to_dict(cfg)]})
    back = build_run_config(tomllib.loads(text)["parts"][0])
    assert back == cfg


def test_every_schema_key_is_settable():
    keys = schema_keys()
    assert "pretrain.lr" in keys and "simclr.temperature" in keys and "semi.frozen_stages" in keys
    assert parse_set_options(["knn.k=5"]) == {"knn": {"k": 5}}
    assert RunConfig().semi.frozen_stages == 2


def test_the_evaluation_batch_follows_the_device_unless_set():
    """On the CPU a batch of 1,024 spends as long in the kernel as in compute (each 64 MB
    activation is mapped and faulted in anew: a 1%-label CIFAR-10 run took 53.6 s, 28 s of it
    system time, against 26.6 s at 128): `auto` picks 128 there and 1,024 on CUDA; a number
    given is used as given."""
    from ssltui.core.settings import RuntimeConfig
    from ssltui.trainer.device import pick_device

    assert RuntimeConfig().eval_batch_size == "auto"
    assert pick_device("cpu", RuntimeConfig()).eval_batch_size == 128
    assert pick_device("cpu", RuntimeConfig(eval_batch_size=512)).eval_batch_size == 512
    cfg = build_run_config({"method": "supervised", "runtime": {"eval_batch_size": "auto"}})
    assert cfg.runtime.eval_batch_size == "auto"
    for bad in (0, -5, "big", True):
        with pytest.raises(ConfigError, match="runtime.eval_batch_size"):
            build_run_config({"method": "supervised", "runtime": {"eval_batch_size": bad}})
