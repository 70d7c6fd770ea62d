"""A plan has one `data` and one `runtime` table; `--resume` finds a run by the identity of what was
asked (method, settings, data, seeds), not by the text of its config.toml."""

from __future__ import annotations

import time

import pytest

from ssltui.core.config import run_options
from ssltui.core.errors import ConfigError
from ssltui.core.plan import find_to_resume, plan_identity, plan_to_toml
from ssltui.core.presets import resolve
from ssltui.core.store import RunStore
from ssltui.core.summary import RunSummary


@pytest.fixture
def presets_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLTUI_PRESETS_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("key, over", [("runtime.workers", "2"), ("data.val_fraction", "0.2")])
def test_a_study_whose_parts_disagree_on_a_run_wide_key_is_refused(presets_dir, key, over):
    section, name = key.split(".")
    (presets_dir / "two.toml").write_text(
        f'study = ["supervised", {{preset = "supervised-he", {section} = {{{name} = {over}}}}}]\n'
    )
    with pytest.raises(ConfigError) as err:
        resolve("two")
    assert key in err.value.message and "run-wide" in err.value.message and "\n" not in err.value.message


def test_a_study_stating_a_run_wide_key_once_agrees(presets_dir):
    (presets_dir / "two.toml").write_text('study = ["supervised", "supervised-he"]\n[runtime]\nworkers = 2\n')
    plan = resolve("two")
    assert plan.runtime.workers == 2 and all(p.runtime.workers == 2 for p in plan.parts)


def _interrupted(store: RunStore, plan, opts):
    run = store.create(plan.preset)
    run.config_path.write_text(plan_to_toml(plan, opts))
    run.write_summary(
        RunSummary.new(
            run_id=run.id,
            preset=plan.preset,
            description="",
            group=run.id,
            status="interrupted",
            methods=["supervised"],
            evaluations=["supervised"],
            labels=[0.1],
            seeds=[0],
            data=opts.data,
            started=time.time(),
            sweep=None,
        )
    )
    return run


def test_resume_finds_the_run_of_the_same_identity_whatever_the_device_or_workers(tmp_path):
    store = RunStore(tmp_path / "runs")
    asked = resolve("smoke", sets=["runtime.workers=1"])
    run = _interrupted(store, asked, run_options(data="synthetic", device="cpu"))
    again = resolve("smoke", sets=["runtime.workers=2", "runtime.log_seconds=1"])
    found = find_to_resume(store, again, run_options(data="synthetic", device="auto", group="g"))
    assert found is not None and found.id == run.id


@pytest.mark.parametrize(
    "sets, data",
    [
        (["supervised.lr=0.2"], "synthetic"),
        (["supervised.lr=0.1"], "cifar10"),
        (["supervised.lr=0.1", "seeds=[1]"], "synthetic"),
    ],
)
def test_resume_does_not_take_a_run_of_other_settings_data_or_seeds(tmp_path, sets, data):
    store = RunStore(tmp_path / "runs")
    _interrupted(store, resolve("smoke", sets=["supervised.lr=0.1"]), run_options(data="synthetic"))
    assert find_to_resume(store, resolve("smoke", sets=sets), run_options(data=data)) is None


def test_the_identity_ignores_the_description_and_how_the_run_goes():
    a = plan_identity(resolve("smoke"), run_options(data="synthetic"))
    b = plan_identity(
        resolve("smoke", sets=['description="other"', "runtime.checkpoint_seconds=5"]),
        run_options(data="synthetic", device="cpu"),
    )
    c = plan_identity(resolve("smoke", sets=["supervised.epochs=3"]), run_options(data="synthetic"))
    assert a == b != c
