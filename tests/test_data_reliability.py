"""The data layer against a hostile but realistic user: a content-aware decode cache, loads that never
hang and stop at once, a parallel decode identical to the sequential one, a cache that is only ever
optional, every image mode, bombs, degenerate data sets, and data errors caught before a run folder
exists."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_env
from PIL import Image
from test_reliability_input import cli as _cli  # `ssltui ARGS` in this process

from ssltui.core.errors import DataError, ExitCode, RunInterrupted
from ssltui.trainer.data import decode as decode_mod
from ssltui.trainer.data import folder as folder_mod
from ssltui.trainer.data.sources import load_image_folder, load_source

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


def _img(path: Path, seed: int, size: tuple[int, int] = (32, 32)) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path)


def _folder(root: Path, classes=("cat", "dog"), n: int = 3, splits=("train", "test")) -> Path:
    for split in splits:
        for ci, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _img(d / f"{i}.png", 100 * ci + i + (50 if split == "test" else 0))
    return root


def _tar(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    return out


class Notes(list):
    """A `log` callback that keeps its lines."""

    def __call__(self, message: str) -> None:
        self.append(message)


def _load(path: Path, cache: Path, **kw):
    notes = Notes()
    return load_source(f"folder:{path}", cache, log=notes, **kw), notes


# ---------------------------------------------------------------- 1. content-aware cache key


def test_unchanged_folder_loads_from_cache_without_a_word(tmp_path: Path) -> None:
    root = _folder(tmp_path / "f")
    first, _ = _load(root, tmp_path / "cache")
    second, notes = _load(root, tmp_path / "cache")
    assert not first.from_cache and second.from_cache and notes == []
    assert np.array_equal(first.train_x, second.train_x) and second.classes == ["cat", "dog"]


def test_moving_an_image_between_classes_decodes_again_and_says_why(tmp_path: Path) -> None:
    root = _folder(tmp_path / "f")
    first, _ = _load(root, tmp_path / "cache")
    os.rename(root / "train" / "cat" / "0.png", root / "train" / "dog" / "moved.png")
    second, notes = _load(root, tmp_path / "cache")
    assert not second.from_cache
    assert np.bincount(second.train_y).tolist() == [2, 4]  # the old cache says [3, 3]
    stale = [n for n in notes if n.startswith("decode cache stale:")]
    assert len(stale) == 1 and "1 file added" in stale[0] and "1 file removed" in stale[0], notes
    assert "decoding again" in stale[0]
    third, notes = _load(root, tmp_path / "cache")
    assert third.from_cache and notes == []  # the re-decode replaced the stale cache


def test_adding_a_class_decodes_again(tmp_path: Path) -> None:
    root = _folder(tmp_path / "f")
    _load(root, tmp_path / "cache")
    _folder(root, classes=("emu",))
    data, notes = _load(root, tmp_path / "cache")
    assert not data.from_cache and data.classes == ["cat", "dog", "emu"]
    assert any("class folders added or removed: test/emu/, train/emu/" in n for n in notes), notes


def test_overwriting_an_image_in_place_decodes_again_even_with_its_old_mtime(tmp_path: Path) -> None:
    root = _folder(tmp_path / "f")
    victim = root / "train" / "cat" / "1.png"
    first, _ = _load(root, tmp_path / "cache")
    st = victim.stat()
    Image.new("RGB", (32, 32), (255, 0, 0)).save(victim)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `cp -p` or `rsync -t` would
    second, notes = _load(root, tmp_path / "cache")
    assert not second.from_cache
    i = [k for k, y in enumerate(second.train_y) if y == 0][1]
    assert (second.train_x[i] == [255, 0, 0]).all() and not (first.train_x[i] == [255, 0, 0]).all()
    assert any("1 file changed (e.g. train/cat/1.png)" in n for n in notes), notes


def test_rewritten_archive_decodes_again_even_with_same_size_and_mtime(tmp_path: Path) -> None:
    tar = tmp_path / "d.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(_folder(tmp_path / "f", n=2), arcname="f")
    first, _ = _load(tar, tmp_path / "cache")
    st = tar.stat()
    with tarfile.open(tar) as tf:
        victim = next(m for m in tf if m.isfile())
    blob = tar.read_bytes()
    start, end = victim.offset_data, victim.offset_data + victim.size
    tar.write_bytes(blob[:start] + _png_of_size(victim.size) + blob[end:])  # same size, new pixels
    os.utime(tar, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert tar.stat().st_size == st.st_size and tar.stat().st_mtime_ns == st.st_mtime_ns
    second, notes = _load(tar, tmp_path / "cache")
    assert not second.from_cache
    assert any("content changed (sha256 of its whole file)" in n for n in notes), notes
    assert (second.train_x == 7).all(axis=(1, 2, 3)).sum() + (second.test_x == 7).all(axis=(1, 2, 3)).sum() == 1
    assert not (first.train_x == 7).all(axis=(1, 2, 3)).any()


def _png_of_size(size: int) -> bytes:
    """A valid, uniformly grey 32x32 PNG padded (with a private ancillary chunk) to `size` bytes."""
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (7, 7, 7)).save(buf, format="PNG")
    png = buf.getvalue()
    pad = size - len(png) - 12
    assert pad >= 0
    data = b"\0" * pad
    chunk = struct.pack(">I", pad) + b"prVt" + data + struct.pack(">I", zlib.crc32(b"prVt" + data) & 0xFFFFFFFF)
    return png[:-12] + chunk + png[-12:]


# ---------------------------------------------------------------- 2. never hang, stop at once


def _special(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A source path that is (or holds, as an image) a special file; the words its error names."""
    if kind == "dev-zero":
        return Path("/dev/zero"), "a character device"
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo")
        return tmp_path / "fifo", "a FIFO"
    if kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(tmp_path / "sock"))
        return tmp_path / "sock", "a socket"
    root = _folder(tmp_path / "f")
    if kind == "fifo-image":
        os.mkfifo(root / "train" / "cat" / "pipe.png")
        return root / "train" / "cat" / "pipe.png", "a FIFO, not a regular file"
    os.symlink("/dev/zero", root / "train" / "dog" / "zero.jpg")
    return root / "train" / "dog" / "zero.jpg", "a character device, not a regular file"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "socket", "fifo-image", "zero-link-image"])
def test_special_files_are_refused_before_a_byte_is_read(tmp_path: Path, kind: str) -> None:
    path, words = _special(tmp_path, kind)
    src = path if kind in ("dev-zero", "fifo", "socket") else tmp_path / "f"
    t0 = time.monotonic()
    with pytest.raises(DataError) as exc:
        load_source(f"folder:{src}", tmp_path / "cache")
    assert time.monotonic() - t0 < 10
    assert exc.value.exit_code == ExitCode.DATA
    assert str(path) in exc.value.message and words in exc.value.message, exc.value.message


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stop_request_ends_a_decode_between_images(tmp_path: Path, monkeypatch, workers: int) -> None:
    monkeypatch.setattr(folder_mod, "CHUNK", 4)
    root = _folder(tmp_path / "f", n=40)
    calls = {"n": 0, "pool": False}
    real_pool = decode_mod._new_pool

    def new_pool(n: int):
        calls["pool"] = True
        return real_pool(n)

    monkeypatch.setattr(decode_mod, "_new_pool", new_pool)

    def should_stop() -> str | bool:  # in the middle of the decode: after 30 images, or 2 polls of the pool
        calls["n"] += 1 if workers == 1 or calls["pool"] else 0
        return "stopped by SIGTERM" if calls["n"] > (30 if workers == 1 else 1) else False

    with pytest.raises(RunInterrupted) as exc:
        load_source(f"folder:{root}", tmp_path / "cache", should_stop=should_stop, workers=workers)
    assert exc.value.message == "stopped by SIGTERM while loading data"
    assert exc.value.exit_code == ExitCode.INTERRUPTED
    assert not (tmp_path / "cache" / "decoded").exists()  # nothing half-written
    assert multiprocessing.active_children() == []  # the pool's workers are gone


@pytest.mark.cifar
def test_one_sigterm_during_a_cli_decode_exits_130_promptly(cifar_archive: Path, tmp_path: Path) -> None:
    """The real CLI decoding the real archive (uncached): one SIGTERM ends it within seconds,
    with no run folder and no worker process left behind. Before: the decode ran to its end."""
    marker = f"SSLTUI_TEST_MARK={os.getpid()}-{time.time()}"
    env = cli_env(tmp_path / "runs", tmp_path / "data", SSLTUI_TEST_MARK=marker.split("=", 1)[1])
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ssltui",
                "run",
                "--preset",
                "smoke",
                "--data",
                f"folder:{cifar_archive}",
                "--device",
                "cpu",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 120
        while "decoding images" not in err_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.05)
        # Two seconds in, results are flowing back: a pool shut down by killing its workers then
        # hung in shutdown() (a result half-written by a killed worker), so this waits that long.
        time.sleep(2.0)
        assert proc.poll() is None, "the decode ended before the signal; it cannot test anything"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = err_path.read_text()
    assert rc == ExitCode.INTERRUPTED and "stopped by SIGTERM while loading data" in err, err
    assert took < 5, f"exit took {took:.1f} s after SIGTERM"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    time.sleep(1.0)  # orphaned workers notice their parent's death within half a second
    assert _processes_with(marker) == []


@pytest.mark.cifar
def test_workers_end_when_their_parent_is_killed(cifar_archive: Path, tmp_path: Path) -> None:
    """SIGKILL leaves no time to shut a pool down: the workers (and the forkserver) still go."""
    marker = f"SSLTUI_TEST_MARK=kill-{os.getpid()}-{time.time()}"
    code = (
        "import sys\nfrom pathlib import Path\nfrom ssltui.trainer.data.sources import load_source\n"
        "if __name__ == '__main__':\n"
        f"    load_source({'folder:' + str(cifar_archive)!r}, Path({str(tmp_path / 'data')!r}), workers=2,\n"
        "                log=lambda m: print(m, flush=True))\n"
    )
    (tmp_path / "load.py").write_text(code)
    env = cli_env(tmp_path / "runs", tmp_path / "data", SSLTUI_TEST_MARK=marker.split("=", 1)[1])
    proc = subprocess.Popen([sys.executable, str(tmp_path / "load.py")], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert "decoding images" in proc.stdout.readline()
        deadline = time.monotonic() + 60
        while len(_processes_with(marker)) < 3:  # the loader and its two workers, at least
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(marker) == []  # before: two workers, the forkserver and its tracker stayed


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_runner_honours_a_stop_while_it_loads(tmp_path: Path) -> None:
    from ssltui.core.presets import resolve
    from ssltui.core.store import RunStore
    from ssltui.trainer.runner import Runner, RunOptions

    plan = resolve("smoke", sets=["data.synthetic_train_per_class=8", "data.synthetic_test_per_class=5"])
    run = RunStore(tmp_path / "runs").create("smoke")
    runner = Runner(plan, run, RunOptions(data="synthetic", data_dir=tmp_path / "data", device="cpu"))
    runner.request_stop("stopped by SIGTERM")
    with pytest.raises(RunInterrupted, match="stopped by SIGTERM while loading data"):
        runner.execute()
    assert runner.summary.status == "interrupted"


# ---------------------------------------------------------------- 3. parallel decode


def _mixed_folder(root: Path) -> Path:
    """Three classes of PNG, JPEG and odd-sized images, enough for several chunks."""
    for split, n in (("train", 14), ("test", 5)):
        for ci, c in enumerate(("ant", "bee", "cow")):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                rng = np.random.default_rng(1000 * ci + i + (500 if split == "test" else 0))
                im = Image.fromarray(rng.integers(0, 256, (24 + i, 40, 3), dtype=np.uint8))
                im.save(d / f"{i}.{'jpg' if i % 2 else 'png'}")
    return root


@pytest.mark.parametrize("as_archive", [False, True])
def test_parallel_decode_is_bit_identical_to_sequential(tmp_path: Path, monkeypatch, as_archive: bool) -> None:
    monkeypatch.setattr(folder_mod, "CHUNK", 8)
    src = _mixed_folder(tmp_path / "mixed")
    if as_archive:
        src = _tar(src, tmp_path / "mixed.tar.gz")
    started = []
    real_pool = decode_mod._new_pool
    monkeypatch.setattr(decode_mod, "_new_pool", lambda n: started.append(n) or real_pool(n))
    notes = Notes()
    seq = load_image_folder(src, workers=1)
    assert started == []
    par = load_image_folder(src, notes, workers=3)
    assert started == [3] and not any("this process" in n for n in notes), notes
    for k in ("train_x", "train_y", "test_x", "test_y"):
        assert np.array_equal(getattr(seq, k), getattr(par, k)), k
    assert seq.classes == par.classes == ["ant", "bee", "cow"] and len(par.train_x) == 42
    assert multiprocessing.active_children() == []


def test_parallel_decode_reports_the_first_bad_image(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(folder_mod, "CHUNK", 4)
    root = _folder(tmp_path / "f", n=12)
    (root / "train" / "dog" / "5.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"dog/5\.png: not a readable image"):
        load_image_folder(root, workers=2)
    assert multiprocessing.active_children() == []


class _BrokenPool:
    """An executor whose every worker has died."""

    def submit(self, fn, *args):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        f = Future()
        f.set_exception(BrokenProcessPool("A child process terminated abruptly"))
        return f

    def close(self, cancel: bool) -> None:
        pass


@pytest.mark.parametrize("failure", ["cannot-start", "worker-died"])
def test_a_failed_pool_falls_back_to_this_process(tmp_path: Path, monkeypatch, failure: str) -> None:
    monkeypatch.setattr(folder_mod, "CHUNK", 4)
    root = _folder(tmp_path / "f", n=8)

    def new_pool(n: int):
        if failure == "cannot-start":
            raise OSError(38, "Function not implemented")
        return _BrokenPool()

    monkeypatch.setattr(decode_mod, "_new_pool", new_pool)
    notes = Notes()
    data = load_image_folder(root, notes, workers=2)
    assert np.array_equal(data.train_x, load_image_folder(root, workers=1).train_x)
    fallback = [n for n in notes if n.endswith("; decoding in this process")]
    assert len(fallback) == 1, notes


# ---------------------------------------------------------------- 4. the cache is optional


def test_unwritable_data_dir_only_costs_speed(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the data dir's parent should be")
    root = _folder(tmp_path / "f")
    for ddir in (blocker / "data", Path("/sys/ssltui-test-data")):
        if ddir.parent == Path("/sys") and os.access("/sys", os.W_OK) and not _sys_refuses():
            continue  # /sys is writable here: the first case stands for a read-only dir
        data, notes = _load(root, ddir)
        assert data.train_x.shape == (6, 32, 32, 3) and not data.from_cache
        assert (
            len(notes) == 2
            and notes[1].startswith("decode cache not saved (")
            and "the next run decodes again" in notes[1]
        ), notes


def _sys_refuses() -> bool:
    try:
        os.mkdir("/sys/ssltui-test-data")
    except OSError:
        return True
    os.rmdir("/sys/ssltui-test-data")
    return False


def test_a_run_goes_on_when_the_data_dir_is_unwritable(tmp_path: Path) -> None:
    from ssltui.core.presets import resolve
    from ssltui.core.store import RunStore
    from ssltui.trainer.runner import Runner, RunOptions

    (tmp_path / "file").write_text("")
    plan = resolve(
        "smoke",
        sets=[
            "data.synthetic_train_per_class=8",
            "data.synthetic_test_per_class=5",
            "supervised.epochs=1",
            "runtime.featuremaps=false",
        ],
    )
    run = RunStore(tmp_path / "runs").create("smoke")
    opts = RunOptions(data="synthetic", data_dir=tmp_path / "file" / "data", device="cpu")
    summary = Runner(plan, run, opts).execute()
    assert summary.status == "completed"  # before: PermissionError/NotADirectoryError, exit 1
    assert "decode cache not saved" in run.log_path.read_text()


def _damage(path: Path, how: str) -> None:
    good = path.read_bytes()
    path.unlink()
    if how == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(os.urandom(4096))
    elif how == "pickle":
        with open(path, "wb") as fh:
            np.savez(fh, meta=np.array([{"planted": "pickle"}], dtype=object))
    elif how == "wrong-shape":
        with np.load(io.BytesIO(good)) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["train_x"] = arrays["train_x"][:, :16]
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    elif how == "bad-labels":
        with np.load(io.BytesIO(good)) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["train_y"] = arrays["train_y"] + 7
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    elif how == "fifo":
        os.mkfifo(path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "how, words",
    [
        ("truncated", "BadZipFile"),
        ("empty", "EOFError"),
        ("garbage", "pickled"),
        ("pickle", "allow_pickle=False"),
        ("wrong-shape", "train images are uint8 (6, 16, 32, 3)"),
        ("bad-labels", "train labels outside 0..1"),
        ("fifo", "a FIFO"),
    ],
)
def test_a_damaged_cache_is_decoded_again_with_one_line(tmp_path: Path, how: str, words: str) -> None:
    root = _folder(tmp_path / "f")
    first, _ = _load(root, tmp_path / "cache")
    (npz,) = (tmp_path / "cache" / "decoded").glob("*.npz")
    _damage(npz, how)
    second, notes = _load(root, tmp_path / "cache")
    assert not second.from_cache and np.array_equal(first.train_x, second.train_x)
    assert len(notes) == 2 and notes[0].startswith("decode cache unreadable: ") and words in notes[0], notes
    assert notes[0].endswith("; decoding again")
    third, notes = _load(root, tmp_path / "cache")
    assert third.from_cache and notes == []  # the damaged file was replaced


def test_a_folder_at_the_cache_path_costs_only_speed(tmp_path: Path) -> None:
    root = _folder(tmp_path / "f")
    _load(root, tmp_path / "cache")
    (npz,) = (tmp_path / "cache" / "decoded").glob("*.npz")
    npz.unlink()
    npz.mkdir()
    data, notes = _load(root, tmp_path / "cache")
    assert data.train_x.shape == (6, 32, 32, 3)
    assert [n.split(":")[0].split(" (")[0] for n in notes] == [
        "decode cache unreadable",
        "decoding 12 images from " + str(root),
        "decode cache not saved",
    ], notes


# ---------------------------------------------------------------- 5. image modes


def _decode_file(path: Path) -> np.ndarray:
    return decode_mod.decode_image(path.read_bytes(), str(path))


def _png(w: int, h: int, color_type: int, rows: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _png16(arr: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG (Pillow writes only 16-bit grey): grey 0, RGB 2, RGBA 6."""
    h, w = arr.shape[:2]
    return _png(w, h, color_type, b"".join(b"\0" + arr[y].astype(">u2").tobytes() for y in range(h)))


def test_bit_grey_png_is_scaled_not_clipped_to_white(tmp_path: Path) -> None:
    grey = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)  # 0..65472
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode in ("I;16", "I")
    out = _decode_file(tmp_path / "g16.png")
    assert np.array_equal(out[..., 0], grey >> 8) and np.array_equal(out[..., 0], out[..., 2])
    assert (out == 255).mean() < 0.01  # before: 99.6% white


def test_bit_png_of_every_colour_type_keeps_its_high_byte(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for color_type, channels in ((0, 1), (2, 3), (6, 4)):
        arr = rng.integers(0, 65536, (32, 32, channels)).astype(np.uint16)
        if color_type == 6:
            arr[..., 3] = 65535  # opaque, so compositing changes nothing
        path = tmp_path / f"c{color_type}.png"
        path.write_bytes(_png16(arr[..., 0] if channels == 1 else arr, color_type))
        out = _decode_file(path).astype(np.int64)
        want = (arr[..., :3] if channels > 1 else np.repeat(arr, 3, axis=2)).astype(np.int64) >> 8
        assert np.abs(out - want).max() <= 1, color_type


def test_other_integer_and_float_modes(tmp_path: Path) -> None:
    ramp = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    Image.fromarray(ramp, "F").save(tmp_path / "f.tif")
    assert np.abs(_decode_file(tmp_path / "f.tif")[..., 1].astype(int) - np.rint(ramp * 255)).max() <= 1
    wide = (ramp * 65535).astype(np.int32)
    Image.fromarray(wide, "I").save(tmp_path / "i.tif")
    assert np.array_equal(_decode_file(tmp_path / "i.tif")[..., 0], (wide >> 8).astype(np.uint8))
    (tmp_path / "g.pgm").write_bytes(b"P5\n32 32\n65535\n" + wide.astype(">u2").tobytes())
    assert np.array_equal(_decode_file(tmp_path / "g.pgm")[..., 2], (wide >> 8).astype(np.uint8))


def test_transparency_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:16] = (200, 10, 10, 255)  # top: opaque red; bottom: transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = _decode_file(tmp_path / "rgba.png")
    assert (out[:16] == (200, 10, 10)).all() and (out[16:] == 255).all()
    Image.fromarray(rgba, "RGBA").convert("LA").save(tmp_path / "la.png")
    assert (_decode_file(tmp_path / "la.png")[16:] == 255).all()
    pal = Image.fromarray(rgba[..., :3]).convert("P")
    pal.info["transparency"] = pal.getpixel((0, 31))
    pal.save(tmp_path / "p.png", transparency=pal.getpixel((0, 31)))
    out = _decode_file(tmp_path / "p.png")
    assert (out[16:] == 255).all() and (out[:16, :, 0] > 150).all()


def test_cmyk_bilevel_and_palette_become_rgb(tmp_path: Path) -> None:
    base = Image.new("RGB", (32, 32), (200, 100, 50))
    base.convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert np.abs(_decode_file(tmp_path / "c.jpg").astype(int) - (200, 100, 50)).max() < 8
    base.convert("1").save(tmp_path / "b.png")
    assert set(np.unique(_decode_file(tmp_path / "b.png"))) <= {0, 255}
    base.convert("P").save(tmp_path / "p.gif")
    assert np.array_equal(_decode_file(tmp_path / "p.gif"), np.asarray(Image.open(tmp_path / "p.gif").convert("RGB")))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((32, 32, 3), np.uint8)
    arr[:8] = 255  # a white band at the top of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 3  # "rotate 180 to view"
    Image.fromarray(arr).save(tmp_path / "r.png", exif=exif)
    out = _decode_file(tmp_path / "r.png")
    assert (out[-8:] == 255).all() and (out[:8] == 0).all()


# ---------------------------------------------------------------- 6. bombs and huge files


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels (its IDAT is never reached: the size is refused first)."""
    return _png(w, h, 0, b"\0" * 64)


@pytest.mark.parametrize(
    "w, h, words",
    [
        (9000, 9000, "over the 50-megapixel limit"),  # below Pillow's warning: our own bound
        (10000, 10000, "decompression bomb"),  # Pillow's warning, made an error
        (30000, 30000, "decompression bomb"),  # Pillow's error
    ],
)
@pytest.mark.parametrize("as_archive", [False, True])
def test_decompression_bombs_are_refused_naming_the_file(
    tmp_path: Path, w: int, h: int, words: str, as_archive: bool
) -> None:
    root = _folder(tmp_path / "f")
    (root / "train" / "cat" / "bomb.png").write_bytes(_png_header_only(w, h))
    src = _tar(root, tmp_path / "f.tar.gz") if as_archive else root
    with pytest.raises(DataError) as exc:
        load_image_folder(src, workers=1)
    assert "bomb.png" in exc.value.message and words in exc.value.message, exc.value.message
    assert exc.value.exit_code == ExitCode.DATA


@pytest.mark.parametrize("as_archive", [False, True])
def test_an_oversized_image_file_is_refused_unread(tmp_path: Path, monkeypatch, as_archive: bool) -> None:
    monkeypatch.setattr(decode_mod, "MAX_FILE_BYTES", 2**20)
    monkeypatch.setattr(folder_mod, "MAX_FILE_BYTES", 2**20)
    root = _folder(tmp_path / "f")
    (root / "train" / "dog" / "huge.png").write_bytes(b"\0" * (2**20 + 1))
    src = _tar(root, tmp_path / "f.tar.gz") if as_archive else root
    with pytest.raises(DataError, match=r"huge\.png: over 1 MB, too large for an image"):
        load_image_folder(src, workers=1)


# ---------------------------------------------------------------- 7. degenerate data sets


@pytest.mark.parametrize("as_archive", [False, True])
def test_one_class_is_refused(tmp_path: Path, as_archive: bool) -> None:
    root = _folder(tmp_path / "f", classes=("only",))
    src = _tar(root, tmp_path / "f.tar.gz") if as_archive else root
    with pytest.raises(DataError) as exc:
        load_source(f"folder:{src}", tmp_path / "cache")
    assert "one class (only)" in exc.value.message and "at least 2" in exc.value.message
    assert str(src) in exc.value.message and exc.value.exit_code == ExitCode.DATA


def test_empty_sources_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty-dir").mkdir()
    with tarfile.open(tmp_path / "empty.tar.gz", "w:gz"):
        pass
    (tmp_path / "zero.tar.gz").write_bytes(b"")
    for name, words in (
        ("empty-dir", "no train/<class>/"),
        ("empty.tar.gz", "no train/<class>/"),
        ("zero.tar.gz", "neither a folder nor"),
    ):
        with pytest.raises(DataError) as exc:
            load_source(f"folder:{tmp_path / name}", tmp_path / "cache")
        assert words in exc.value.message and name in exc.value.message


ODD = ["a b", "[red]x", "ünïcödé", "new\nline", "esc\x1b[31m", b"caf\xe9"]


@pytest.mark.parametrize("as_archive", [False, True])
def test_odd_and_undecodable_class_names_load_as_printable_names(tmp_path: Path, as_archive: bool) -> None:
    root = tmp_path / "odd"
    for split in ("train", "test"):
        for i, name in enumerate(ODD):
            d = os.path.join(os.fsencode(root), split.encode(), name if isinstance(name, bytes) else name.encode())
            os.makedirs(d)
            _img(Path(os.fsdecode(d)) / "0.png", i)
    src = _tar(root, tmp_path / "odd.tar.gz") if as_archive else root
    data, _ = _load(src, tmp_path / "cache")
    assert len(data.classes) == len(ODD) and all(c.isprintable() for c in data.classes), data.classes
    assert {"a b", "[red]x", "ünïcödé", "new\\x0aline", "esc\\x1b[31m", "caf\\xe9"} == set(data.classes)
    json.dumps(data.classes).encode()  # goes into events and summaries as it is
    again, _ = _load(src, tmp_path / "cache")
    assert again.from_cache and again.classes == data.classes


def test_an_undecodable_source_path_loads(tmp_path: Path) -> None:
    root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/d\xffta"))
    _folder(root)
    data, _ = _load(root, tmp_path / "cache")
    assert data.source.isprintable() and "\\xff" in data.source
    import torch

    from ssltui.trainer.data.bundle import make_bundle

    assert len(make_bundle(data, torch.device("cpu"), 0.34, 0).fingerprint) == 16


# ---------------------------------------------------------------- 8. errors before a run folder


@pytest.fixture
def restore_signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("case", ["no-test-split", "one-class", "bad-image", "dev-zero", "bomb"])
def test_a_data_error_leaves_no_run_folder(tmp_path: Path, restore_signals, case: str) -> None:
    root = _folder(tmp_path / "f", classes=("only",) if case == "one-class" else ("cat", "dog"))
    if case == "no-test-split":
        shutil.rmtree(root / "test")
    elif case == "bad-image":
        (root / "test" / "dog" / "x.jpg").write_bytes(b"\xff\xd8 no")
    elif case == "bomb":
        (root / "train" / "cat" / "bomb.png").write_bytes(_png_header_only(30000, 30000))
    src = "/dev/zero" if case == "dev-zero" else str(root)
    runs = tmp_path / "runs"
    code, out, err = _cli(
        "run",
        "--preset",
        "smoke",
        "--device",
        "cpu",
        "-q",
        "--data",
        f"folder:{src}",
        "--data-dir",
        str(tmp_path / "data"),
        "--runs-dir",
        str(runs),
    )
    assert code == ExitCode.DATA, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssltui: error: ") and src in lines[0], err
    assert not runs.exists() or list(runs.iterdir()) == []  # before: a failed run folder


def test_a_data_error_in_a_premade_run_folder_is_recorded_there(tmp_path: Path, restore_signals) -> None:
    """The TUI makes the run folder, then starts `ssltui run --run-id`: the failure shows in it."""
    root = _folder(tmp_path / "f", classes=("only",))
    runs = tmp_path / "runs"
    (runs / "premade").mkdir(parents=True)
    code, _, err = _cli(
        "run",
        "--preset",
        "smoke",
        "--device",
        "cpu",
        "-q",
        "--data",
        f"folder:{root}",
        "--data-dir",
        str(tmp_path / "data"),
        "--runs-dir",
        str(runs),
        "--run-id",
        "premade",
    )
    assert code == ExitCode.DATA and "one class (only)" in err, err
    summary = json.loads((runs / "premade" / "summary.json").read_text())
    assert summary["status"] == "failed" and "one class (only)" in summary["error"]


def test_the_cli_hands_its_loaded_data_to_the_runner(tmp_path: Path, restore_signals, monkeypatch) -> None:
    import ssltui.trainer.runner as runner_mod

    def no_second_load(*args, **kwargs):
        raise AssertionError("the runner loaded the data again")

    monkeypatch.setattr(runner_mod, "load_source", no_second_load)
    root = _folder(tmp_path / "f", n=6)
    runs = tmp_path / "runs"
    code, out, err = _cli(
        "run",
        "--preset",
        "smoke",
        "--device",
        "cpu",
        "-q",
        "--json",
        "--data",
        f"folder:{root}",
        "--data-dir",
        str(tmp_path / "data"),
        "--runs-dir",
        str(runs),
        "--labels",
        "1.0",
        "--set",
        "supervised.epochs=1",
        "--set",
        "runtime.featuremaps=false",
        "--set",
        "data.val_fraction=0.2",
    )
    assert code == 0, err
    (run,) = runs.iterdir()
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    (data,) = [e for e in events if e["event"] == "data"]
    assert data["from_cache"] is False and data["classes"] == ["cat", "dog"] and data["train"] + data["val"] == 12
    assert data["notes"] == [f"decoding 24 images from {root}"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["timings"]["data"] >= data["load_seconds"] > 0
