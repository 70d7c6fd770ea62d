"""Bad input: presets and --set values exit 2, data sources exit 3, each in one line
that names the key or the path. Most cases run the CLI in-process (`entry` with argv, `--dry-run`
so that nothing could train); a few run the real subprocess for the exit code end to end."""

from __future__ import annotations

import io
import os
import sys
import tarfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reliability_tools import finish, spawn

from ssltui.cli.main import entry
from ssltui.core.errors import DataError
from ssltui.trainer.data.sources import load_image_folder, load_source


def cli(*args: str) -> tuple[int, str, str]:
    """Run `ssltui ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = ["ssltui", *args]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            entry()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    return code, out.getvalue(), err.getvalue()


BASE = ["run", "--preset", "smoke", "--data", "synthetic", "--device", "cpu", "--dry-run"]


@pytest.mark.parametrize(
    "args, names",
    [
        (["--set", "supervised.lrr=0.1"], ["supervised.lrr", "lr", "known:"]),
        (["--set", "superviseed.lr=0.1"], ["superviseed.lr", "sections:"]),
        (["--set", "supervised.lr"], ["supervised.lr", "key=value"]),
        (["--set", "supervised.lr=fast"], ["supervised.lr", "expected a number"]),
        (["--set", "supervised.epochs=2.5"], ["supervised.epochs", "integer"]),
        (["--set", "supervised.nesterov=maybe"], ["supervised.nesterov", "true or false"]),
        (["--set", "supervised.lr=-0.1"], ["supervised.lr", "must be > 0"]),
        (["--set", "supervised.lr=nan"], ["supervised.lr", "finite"]),
        (["--set", "supervised.batch_size=0"], ["supervised.batch_size", "must be >= 1"]),
        (["--set", "supervised.optimizer=adam"], ["supervised.optimizer", "sgd, lars, adamw"]),
        (["--set", "data.val_fraction=0.9"], ["data.val_fraction", "<= 0.5"]),
        (["--labels", "0"], ["labels", "(0, 1]"]),
        (["--labels", "1.5"], ["labels", "(0, 1]"]),
        (["--labels", "-0.1"], ["labels", "(0, 1]"]),
        (["--labels", "ten"], ["--labels", "float"]),
        (["--seeds", "-1"], ["seeds", "negative"]),
        (["--method", "swav"], ["--method", "supervised, simclr, rotnet, byol, simsiam, moco, barlow, vicreg"]),
        (["--method", "simclr", "--evaluation", "supervised"], ["evaluation", "allowed: linear, semi, knn"]),
        (["--method", "supervised", "--evaluation", "knn"], ["evaluation", "allowed: supervised"]),
        (["--evaluation", "zeroshot"], ["evaluation", "supervised, linear, semi, knn"]),
        (["--device", "tpu"], ["--device", "auto, cpu, cuda"]),
        (["--data", "imagenet"], ["--data", "cifar10, synthetic or folder:PATH"]),
        (["--run-id", "../escape"], ["--run-id"]),
        (["--bogus-flag"], ["--bogus-flag"]),
    ],
)
def test_bad_settings_exit_2_in_one_line_naming_the_key(args: list[str], names: list[str]) -> None:
    code, out, err = cli(*BASE, *args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssltui: error:"), err
    for name in names:
        assert name in lines[0], (name, lines[0])


def test_bad_preset_files_exit_2(tmp_path: Path) -> None:
    cases = {
        "syntax.toml": ("method = \n", "not valid TOML"),
        "key.toml": ("metod = 'supervised'\n", "metod"),
        "type.toml": ("[supervised]\nepochs = 'ten'\n", "supervised.epochs"),
        "table.toml": ("supervised = 3\n", "supervised"),
        "range.toml": ("[supervised]\nbatch_size = -4\n", "supervised.batch_size"),
        "study.toml": ("study = 3\n", "study"),
        "study_entry.toml": ("study = [{preset = 7}]\n", "preset"),
        "study_missing.toml": ("study = ['no-such-preset']\n", "no-such-preset"),
    }
    for name, (text, word) in cases.items():
        (tmp_path / name).write_text(text)
        code, out, err = cli("run", "--preset", str(tmp_path / name), "--dry-run")
        assert code == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and word in err, (name, err)
    code, _, err = cli("run", "--preset", "no-such-preset", "--dry-run")
    assert code == 2 and "known:" in err and "smoke" in err


def test_dry_run_prints_the_plan_and_creates_nothing(tmp_path: Path, runs_dir: Path) -> None:
    code, out, err = cli(*BASE, "--labels", "0.1,0.5", "--seeds", "0,1", "--set", "supervised.epochs=3")
    assert code == 0, err
    assert "epochs = 3" in out and out.count("p0-supervised/supervised/labels") == 4
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_more_labels_than_images_fails_before_training(run_cli, runs_dir: Path) -> None:
    # Synthetic: 30 images a class, 3 of them held out for validation; 0.95 asks 29 of 27.
    r = run_cli(
        "run",
        "--preset",
        "smoke",
        "--data",
        "synthetic",
        "--device",
        "cpu",
        "--labels",
        "0.95",
        "--set",
        "data.synthetic_train_per_class=30",
        "--set",
        "data.synthetic_test_per_class=2",
        "--json",
        "-q",
        "--run-id",
        "toomany",
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "labels: 0.95" in r.stderr and "27" in r.stderr
    assert not any((runs_dir / "toomany" / "checkpoints").glob("*.pt"))


# ---------------------------------------------------------------- data sources


def _img(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)


def _folder(root: Path, classes=("cat", "dog"), splits=("train", "test"), n: int = 3) -> Path:
    for split in splits:
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _img(root / split / c / f"{i}.png", i)
    return root


def _tar(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    return out


def _bad_sources(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, the words the error must hold besides the path)."""
    cases = {"missing": (tmp / "nowhere", "no such file")}
    cases["no-train-test"] = (_folder(tmp / "nosplit", splits=("training", "testing")), "no train/<class>/")
    empty = _folder(tmp / "empty")
    (empty / "train" / "bird").mkdir()
    (empty / "test" / "bird").mkdir()
    cases["empty-class-dir"] = (empty, "train/bird has no images")
    notes = _folder(tmp / "notes")
    for split in ("train", "test"):
        (notes / split / "bird").mkdir()
        (notes / split / "bird" / "README.txt").write_text("no images here")
    cases["class-of-non-images"] = (notes, "train/bird has no images")
    bad = _folder(tmp / "badimg")
    (bad / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    cases["non-image-file"] = (bad, "broken.jpg: not a readable image")
    mismatch = _folder(tmp / "mismatch", splits=("train",))
    _folder(mismatch, classes=("cat", "cow"), splits=("test",))
    cases["mismatched-classes"] = (mismatch, "only in train: ['dog'], only in test: ['cow']")
    cases["tar-mismatched"] = (_tar(mismatch, tmp / "mismatch.tar.gz"), "only in train")
    cut = _tar(_folder(tmp / "ok"), tmp / "ok.tar.gz")
    (tmp / "cut.tar.gz").write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    cases["truncated-tar"] = (tmp / "cut.tar.gz", "damaged")
    (tmp / "plain.bin").write_bytes(os.urandom(100))
    cases["not-an-archive"] = (tmp / "plain.bin", "neither a folder nor")
    return cases


def test_bad_data_sources_name_the_path(tmp_path: Path) -> None:
    cases = _bad_sources(tmp_path)
    for name, (path, words) in cases.items():
        with pytest.raises(DataError) as exc:
            load_source(f"folder:{path}", tmp_path / "cache")
        msg = exc.value.message
        assert str(path) in msg and words in msg and "\n" not in msg, (name, msg)
    # The good folder and its archive load, so the refusals above are about what is wrong.
    raw = load_image_folder(tmp_path / "ok")
    assert raw.train_x.shape == (6, 32, 32, 3) and raw.classes == ["cat", "dog"]
    assert load_image_folder(tmp_path / "ok.tar.gz").train_x.shape == (6, 32, 32, 3)


def test_unreadable_image_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _folder(tmp_path / "perm")
    victim = root / "train" / "dog" / "1.png"
    real = os.open

    def fake_open(path, *args, **kwargs):  # chmod 000 does not stop root, so fake EACCES
        if os.fspath(path) == str(victim):
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    with pytest.raises(DataError) as exc:
        load_image_folder(root)
    assert str(victim) in exc.value.message and "Permission denied" in exc.value.message


@pytest.mark.parametrize("name", ["missing", "empty-class-dir"])
def test_bad_data_exits_3_in_one_line(tmp_path: Path, data_dir: Path, name: str) -> None:
    path, words = _bad_sources(tmp_path)[name]
    rc, out, err = finish(
        spawn(
            tmp_path / "runs", data_dir, "run", "--preset", "smoke", "--data", f"folder:{path}", "--device", "cpu", "-q"
        ),
        timeout=120,
    )
    assert rc == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and words in lines[0], err
