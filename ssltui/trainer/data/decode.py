"""Image files to 32x32 RGB uint8 arrays: one at a time, or many on a pool of worker processes.

Files are stat'ed, then opened without blocking and checked again to be regular before a byte is
read, so a FIFO, a socket, a device or /dev/zero named as data cannot hang a load. Workers run in
`forkserver` (else `spawn`) processes: the caller may be threaded (the TUI), and forking a
threaded process can deadlock.
"""

from __future__ import annotations

import io
import itertools
import multiprocessing
import os
import signal
import stat
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps

from ssltui.core.errors import DataError, first_line

SIZE = 32
MAX_PIXELS = 50_000_000  # one image; larger ones are refused before their pixels are decoded
MAX_FILE_BYTES = 256 * 2**20  # one image file
CHUNK = 2048  # images a worker decodes per task: large enough to hide the hand-off, small enough to balance
EXIF_ORIENTATION = 0x0112
ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}  # not "LAB": its A is a colour axis

Item = tuple[str, "bytes | str"]  # (where, for messages; the file's bytes, or its path to read)
Check = Callable[[], None]  # raises to stop (RunInterrupted)
T = TypeVar("T")

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(mode: int) -> str:
    """`st_mode` in words, for messages ("a FIFO", "a character device", ...)."""
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def printable(text: str) -> str:
    """`text` with undecodable bytes and control characters escaped, for names shown to people
    and written to JSON (a folder name may hold any byte but / and NUL)."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def _open_fd(path: str | os.PathLike, where: str, stat_first: bool = True) -> tuple[int, int]:
    """A descriptor open for reading on a regular file; anything else is refused before it is
    opened (a device may act on open) unless the caller has just stat'ed it, and again after
    (it may have been swapped in between). O_NONBLOCK: a FIFO never blocks the open."""
    try:
        if stat_first and not stat.S_ISREG((st := os.stat(path)).st_mode):
            raise DataError(f"{where}: {file_kind(st.st_mode)}, not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise DataError(f"{where}: no such file or folder") from None
    except OSError as exc:
        raise DataError(f"{where}: cannot read ({os_reason(exc)})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise DataError(f"{where}: {file_kind(st.st_mode)}, not a regular file")
    return fd, st.st_size


def open_regular(path: str | os.PathLike, where: str | None = None) -> io.BufferedReader:
    """A regular file opened for reading (see `_open_fd`), as a file object."""
    return os.fdopen(_open_fd(path, where or printable(os.fsdecode(path)))[0], "rb")


def read_regular(
    path: str | os.PathLike, where: str | None = None, limit: int | None = None, stat_first: bool = True
) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (default MAX_FILE_BYTES; a /proc file
    can claim size 0 and never end, so the limit bounds the read, not the stat)."""
    where = where or printable(os.fsdecode(path))
    limit = MAX_FILE_BYTES if limit is None else limit
    fd, expected = _open_fd(path, where, stat_first)
    blocks, size = [], 0
    try:  # the stat's size in one read, then whatever a file that grew (or lied) still holds
        while size <= limit and (block := os.read(fd, min(limit + 1 - size, max(expected + 1 - size, 2**16)))):
            blocks.append(block)
            size += len(block)
    except BlockingIOError:
        raise DataError(f"{where}: cannot read (no data without waiting)") from None
    except OSError as exc:
        raise DataError(f"{where}: cannot read ({os_reason(exc)})") from None
    finally:
        os.close(fd)
    if size > limit:
        raise DataError(f"{where}: over {limit // 2**20} MB, too large for an image")
    return b"".join(blocks) if len(blocks) != 1 else blocks[0]


# ---------------------------------------------------------------- one image


def _grey_to_rgb(grey: np.ndarray) -> Image.Image:
    return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: 16- and 32-bit grey scaled by >> 8 (Pillow's own conversion
    clips them to 255), float grey read as [0, 1] when it fits there, and transparency composited
    over white (what a viewer shows) rather than dropped onto whatever colour hides under it."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        return _grey_to_rgb(np.clip(np.asarray(im).astype(np.int64), 0, 65535) >> 8)
    if mode == "F":
        a = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        return _grey_to_rgb(np.clip(np.rint(a), 0, 255))
    if mode in ALPHA_MODES or "transparency" in im.info:
        over = Image.new("RGBA", im.size, (255, 255, 255, 255))
        over.alpha_composite(im.convert("RGBA"))
        return over.convert("RGB")
    return im.convert("RGB")


def _upright(im: Image.Image) -> Image.Image:
    """Apply an EXIF orientation (a phone photo stored sideways), which rotation prediction
    would otherwise learn as the wrong way up. A damaged EXIF block is ignored, not fatal."""
    try:
        orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - metadata only; the pixels may still be fine
        return im
    return ImageOps.exif_transpose(im) if orientation not in (1, None) else im


def decode_image(blob: bytes, where: str) -> np.ndarray:
    """One encoded image -> uint8 (32, 32, 3)."""
    try:
        with Image.open(io.BytesIO(blob)) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise DataError(
                    f"{where}: {w}x{h} pixels, over the {MAX_PIXELS // 10**6}-megapixel limit for one image"
                )
            if im.format == "JPEG":
                im.draft(None, (SIZE, SIZE))  # let the JPEG decoder downscale large photos itself
            rgb = to_rgb(_upright(im))
            if rgb.size != (SIZE, SIZE):
                rgb = rgb.resize((SIZE, SIZE), Image.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{where}: refused as a decompression bomb ({first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - hostile files raise anything (SyntaxError, struct.error...)
        raise DataError(f"{where}: not a readable image ({type(exc).__name__})") from None


def decode_items(items: list[Item], check: Check | None = None) -> np.ndarray:
    """Decode a list of images in order (reading those given by path), checking `check` before each."""
    out = np.empty((len(items), SIZE, SIZE, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for i, (where, payload) in enumerate(items):
            if check is not None:
                check()
            # By path: a folder's file, stat'ed by its scan a moment ago (fstat still checks it).
            blob = payload if isinstance(payload, bytes) else read_regular(payload, where, stat_first=False)
            out[i] = decode_image(blob, where)
    return out


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


# ---------------------------------------------------------------- many images


def default_workers() -> int:
    """The CPUs this process may run on (a scheduler's affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def decode_chunks(
    chunks: Iterable[list[Item]], workers: int, check: Check, log: Callable[[str], None]
) -> list[np.ndarray]:
    """Decode each chunk, in order: in this process when there is one chunk or one worker, else on
    `workers` processes, the next chunks produced (read) while earlier ones decode."""
    it = iter(chunks)
    head = list(itertools.islice(it, 2))
    if len(head) < 2 or workers < 2:
        return [decode_items(chunk, check) for chunk in itertools.chain(head, it)]
    return _PoolDecode(workers, check, log).run(itertools.chain(head, it))


def _exit_with_parent(lifeline) -> None:
    try:
        lifeline.recv()  # nothing is ever sent: this returns, at EOF, once the parent has gone
    except (EOFError, OSError):
        pass
    os._exit(1)


class _Cancelled(Exception):
    """A worker's chunk abandoned because the parent stopped the decode."""


_cancel_event = None  # in a worker: set by the parent when a stop or an error makes the rest useless


def _worker_init(lifeline, cancel) -> None:
    global _cancel_event
    _cancel_event = cancel
    # Ctrl-C reaches the whole process group: the parent decides what a stop means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent killed by SIGKILL cannot shut its pool down, and a forkserver's children keep the
    # server alive, so each worker watches a pipe only the parent holds open, and exits at its EOF.
    threading.Thread(target=_exit_with_parent, args=(lifeline,), daemon=True).start()


def _check_cancel() -> None:
    if _cancel_event is not None and _cancel_event.is_set():
        raise _Cancelled()


def _decode_in_worker(items: list[Item]) -> np.ndarray:
    return decode_items(items, _check_cancel)


class _Pool:
    """A process pool whose workers end with this process, however it ends."""

    def __init__(self, workers: int):
        if "forkserver" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["__main__", __name__])  # imported once, not in every worker
        else:
            ctx = multiprocessing.get_context("spawn")
        self.lifeline, self._held = ctx.Pipe(duplex=False)
        self.cancel = ctx.Event()
        self.executor = ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_worker_init, initargs=(self.lifeline, self.cancel)
        )

    def submit(self, fn: Callable, *args: object) -> Future:
        return self.executor.submit(fn, *args)

    def close(self, cancel: bool) -> None:
        if cancel:  # a stop or an error: workers drop their chunks within one image
            # Not SIGKILL: a worker killed while writing its result leaves a partial message that
            # the executor's reader thread waits on forever, and shutdown() with it.
            self.cancel.set()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.lifeline.close()
        self._held.close()


def _new_pool(workers: int) -> _Pool:
    return _Pool(workers)


class _PoolDecode:
    """Chunks on a process pool, at most two a worker in flight; if the pool cannot start or a
    worker dies (killed, out of memory), the rest is decoded in this process, with one log line."""

    def __init__(self, workers: int, check: Check, log: Callable[[str], None]):
        self.workers, self.check, self.log = workers, check, log
        self.results: dict[int, np.ndarray] = {}
        self.pending: dict[Future, tuple[int, list[Item]]] = {}
        self.pool: _Pool | None = None

    def run(self, chunks: Iterable[list[Item]]) -> list[np.ndarray]:
        try:
            self.pool = _new_pool(self.workers)
        except (OSError, ValueError, ImportError, NotImplementedError) as exc:
            self._fall_back(f"parallel decode unavailable ({first_line(exc)})")
        done = False
        try:
            for i, chunk in enumerate(chunks):
                while self.pool is not None and len(self.pending) >= 2 * self.workers:
                    self._collect()
                self._submit(i, chunk)
            while self.pending:
                self._collect()
            done = True
        finally:
            if self.pool is not None:
                self.pool.close(cancel=not done)
        return [self.results[i] for i in range(len(self.results))]

    def _submit(self, i: int, chunk: list[Item]) -> None:
        if self.pool is not None:
            try:
                self.pending[self.pool.submit(_decode_in_worker, chunk)] = (i, chunk)
                return
            except (OSError, RuntimeError) as exc:  # BrokenProcessPool is a RuntimeError
                self._fall_back(f"parallel decode stopped ({first_line(exc)})")
        self.results[i] = decode_items(chunk, self.check)

    def _collect(self) -> None:
        done, _ = wait(self.pending, timeout=0.1, return_when=FIRST_COMPLETED)
        self.check()
        errors = sorted(
            ((self.pending[f][0], f.exception()) for f in done if f.exception() is not None), key=lambda e: e[0]
        )
        if any(isinstance(e, BrokenProcessPool) for _, e in errors):
            self._fall_back(f"a decode worker died ({first_line(errors[0][1])})")
            return
        if errors:
            raise errors[0][1]  # the first bad image among those decoded so far
        for f in done:
            i, _ = self.pending.pop(f)
            self.results[i] = f.result()

    def _fall_back(self, why: str) -> None:
        """Decode in this process from here on, starting with the chunks that were in flight."""
        self.log(f"{why}; decoding in this process")
        if self.pool is not None:
            self.pool.close(cancel=True)
            self.pool = None
        for i, chunk in sorted(self.pending.values(), key=lambda p: p[0]):
            self.results[i] = decode_items(chunk, self.check)
        self.pending.clear()
