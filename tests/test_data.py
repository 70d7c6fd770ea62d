"""Data sources: the CIFAR-10 archive, image folders, synthetic data, the decode cache, errors."""

from __future__ import annotations

import tarfile
import urllib.error

import numpy as np
import pytest
from PIL import Image

from ssltui.core.errors import DataError, ExitCode
from ssltui.trainer.data.sources import load_image_folder, load_source, make_synthetic


def _folder(root, classes=("a", "b"), n=3, size=(32, 32), mode="RGB"):
    for split in ("train", "test"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.new(mode, size, color=(i * 40) if mode == "L" else (i * 40, 10, 200)).save(d / f"{i}.png")
    return root


@pytest.mark.cifar
def test_cifar_archive_decodes_once_then_loads_from_cache(cifar_archive, tmp_path):
    first = load_source(f"folder:{cifar_archive}", tmp_path)
    assert first.train_x.shape == (50000, 32, 32, 3) and first.train_x.dtype == np.uint8
    assert first.test_x.shape == (10000, 32, 32, 3)
    assert first.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert np.bincount(first.train_y).tolist() == [5000] * 10
    assert np.bincount(first.test_y).tolist() == [1000] * 10
    assert not first.from_cache
    second = load_source(f"folder:{cifar_archive}", tmp_path)
    assert second.from_cache
    assert np.array_equal(first.train_x, second.train_x) and np.array_equal(first.test_y, second.test_y)
    print(f"decode {first.decode_seconds:.2f} s, cached load {second.load_seconds:.3f} s")


def test_image_folder_converts_and_resizes(tmp_path):
    _folder(tmp_path / "f", size=(48, 20), mode="L")
    data = load_image_folder(tmp_path / "f")
    assert data.train_x.shape == (6, 32, 32, 3) and data.classes == ["a", "b"]
    assert data.train_y.tolist().count(1) == 3


def test_tar_archive_with_wrapping_folder(tmp_path):
    root = _folder(tmp_path / "inner")
    tar = tmp_path / "data.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(root, arcname="wrapped")
    data = load_source(f"folder:{tar}", tmp_path / "cache")
    assert data.test_x.shape == (6, 32, 32, 3) and data.classes == ["a", "b"]


@pytest.mark.parametrize(
    "breakage, fragment",
    [
        ("missing", "no such file"),
        ("no_test", "no test/<class>/ folders"),
        ("mismatch", "train and test classes differ"),
        ("empty_class", "has no images"),
        ("bad_image", "not a readable image"),
    ],
)
def test_folder_errors_name_the_path(tmp_path, breakage, fragment):
    root = tmp_path / "f"
    if breakage != "missing":
        _folder(root)
    if breakage == "no_test":
        import shutil

        shutil.rmtree(root / "test")
    elif breakage == "mismatch":
        (root / "test" / "b").rename(root / "test" / "c")
    elif breakage == "empty_class":
        for f in (root / "train" / "b").iterdir():
            f.unlink()
    elif breakage == "bad_image":
        (root / "train" / "a" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError) as err:
        load_source(f"folder:{root}", tmp_path / "cache")
    assert fragment in err.value.message and str(root) in err.value.message
    assert err.value.exit_code == ExitCode.DATA


def test_cifar10_download_failure_names_the_fix(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match=r"could not download CIFAR-10 .*--data folder:PATH"):
        load_source("cifar10", tmp_path)


def test_synthetic_has_class_structure():
    data = make_synthetic(50, 10)
    assert data.train_x.shape == (500, 32, 32, 3) and np.bincount(data.train_y).tolist() == [50] * 10
    # Class means differ far more than images within a class would by noise alone.
    means = np.stack([data.train_x[data.train_y == c].mean(0) for c in range(10)])
    assert np.abs(means[:, None] - means[None]).mean() > 5
    assert np.array_equal(make_synthetic(50, 10).train_x, data.train_x)  # deterministic
