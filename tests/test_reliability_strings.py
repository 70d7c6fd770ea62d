"""Property-based (hypothesis): arbitrary strings in every user-given field (--group, a
preset's description, name and path, the data path, --run-id, `--set` string values, the fields
of a hand-edited summary.json) never break `runs`, `show`, `table`, `resume` or the TUI's runs
list. The strings hold control characters, brackets and rich markup, quotes, newlines, 2,000
characters, and bytes that are not UTF-8 (lone surrogates, as Python hands undecodable argv and
file names over; written to disk as the raw bytes).

Every command runs in this process (`entry`); a run is started by the real code up to its
training, which is replaced by a failure (nothing trains). Derandomized and bounded (~20 s)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import tempfile
import tomllib
from pathlib import Path

from conftest import REPO
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from test_reliability_input import cli
from test_reliability_store import SMOKE, one_line_error, runs_list_loaded, stopped_runner  # noqa: F401 - a fixture

# No explain phase: on a failure it reruns hundreds of examples (minutes) to annotate the report.
PROPERTY = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Pieces that broke readers before, mixed with any text hypothesis likes. Lone surrogates (bytes
# that are not UTF-8) are drawn separately: a run cannot record them, so they must be refused.
NASTY = [
    "[/b]",
    "a[/b]",
    "[bold",
    "[link=file:///x]x",
    "\x1b[31m",
    "\x1b[2J",
    "\x07",
    "\x00",
    "\x7f",
    "\x9b",
    "\n",
    "\r\n",
    "\t",
    '"',
    "'",
    "\\",
    '"""',
    "'''",
    "${HOME}",
    "%s",
    "{}",
    "=",
    "#",
    "é",
    "😀",
    "\u202e",
    " ",
    "-",
    "--json",
    ".",
    "..",
    "/",
    "r" * 2000,
]
UNDECODABLE = ["\udcff", "\udce9", "\udc80"]  # bytes 0xff, 0xe9, 0x80 (surrogateescape, as os.fsdecode)
nasty = st.one_of(
    st.text(max_size=12),
    st.lists(st.sampled_from(NASTY), min_size=1, max_size=4).map("".join),
    st.builds(lambda a, b: a + b, st.sampled_from(NASTY), st.text(max_size=6)),
)
undecodable = st.builds(lambda a, u, b: a + u + b, nasty, st.sampled_from(UNDECODABLE), nasty)
FIELDS = ["group", "set_description", "preset_desc", "preset_name", "data_name"]
values = st.one_of(
    nasty,
    undecodable,
    st.just("a\ud800b"),
    st.none(),
    st.integers(-5, 10**30),
    st.floats(),
    st.lists(nasty, max_size=2),
    st.dictionaries(nasty, nasty, max_size=2),
)
SUMMARY_FIELDS = [
    "preset",
    "description",
    "group",
    "status",
    "error",
    "data",
    "device",
    "host",
    "run_id",
    "started",
    "methods",
    "evaluations",
    "results.method",
    "results.evaluation",
    "argv",
]
edits = st.dictionaries(st.sampled_from(SUMMARY_FIELDS), values, max_size=4)
# A start time that cannot be a date (it once emptied the TUI's runs list) in every edit of the TUI test.
odd_times = st.one_of(st.sampled_from([1e20, -1.0, 1e300, "yesterday", None]), st.floats())
tui_edits = st.builds(lambda e, t: {**e, "started": t}, edits, odd_times)


def disk_bytes(text: str) -> bytes:
    """A string as the bytes a file holds: lone surrogates become the non-UTF-8 bytes they stand for."""
    return text.encode(
        "utf-8", "surrogateescape" if all(not 0xD800 <= ord(c) <= 0xDC7F for c in text) else "surrogatepass"
    )


def file_name(text: str) -> str:
    """A legal file name from any text: no '/' or NUL, not empty or a dot name, at most ~150 bytes;
    surrogates the OS cannot take (outside surrogateescape's range) become '?'."""
    name = "".join("?" if c in "/\x00" or 0xD800 <= ord(c) <= 0xDC7F else c for c in text)
    while len(os.fsencode(name)) > 150:
        name = name[:-1]
    return name if name.strip(".") else f"x{name}"


def preset_file(where: Path, name: str, description: str) -> Path:
    """smoke.toml with a new description, under a file name from `name`."""
    from ssltui.core.config import dumps_toml

    raw = tomllib.loads((REPO / "presets" / "smoke.toml").read_text(encoding="utf-8"))
    raw["description"] = description
    path = Path(os.fsdecode(os.fsencode(where) + b"/" + os.fsencode(file_name(name)) + b".toml"))
    path.write_bytes(disk_bytes(dumps_toml(raw)))
    return path


def edit_summary(path: Path, changes: dict) -> None:
    """Hand-edit summary.json: set fields (`results.method` is the first result's), write raw bytes."""
    doc = json.loads(path.read_bytes())
    for key, value in changes.items():
        if key.startswith("results."):
            if doc.get("results"):
                doc["results"][0][key.partition(".")[2]] = value
        else:
            doc[key] = value
    path.write_bytes(disk_bytes(json.dumps(doc, ensure_ascii=False, allow_nan=True)))


def clean(code: int, out: str, err: str, allowed: tuple[int, ...]) -> None:
    assert code in allowed, (code, out[-500:], err)
    assert "Traceback" not in out + err and "internal error" not in err, err
    if err.strip():
        assert len(err.strip().splitlines()) == 1, err


_counter = itertools.count()


def start_run(
    tmp: Path,
    runs: Path,
    started: list,
    group: str,
    set_description: str,
    preset_desc: str,
    preset_name: str,
    data_name: str,
    run_id: str | None,
) -> str | None:
    """`ssltui run` with every user-given field drawn; the run's id when a run folder was made."""
    data = Path(os.fsdecode(os.fsencode(tmp) + b"/" + os.fsencode(file_name(data_name))))
    data.mkdir(exist_ok=True)
    preset = preset_file(tmp, preset_name, preset_desc)
    args = [
        "run",
        *SMOKE,
        f"--preset={preset}",
        f"--data=folder:{data}",
        f"--group={group}",
        f"--set=description={set_description}",
        f"--runs-dir={runs}",
    ]
    if run_id is not None:
        args.append(f"--run-id={run_id}")
    before = len(started)
    code, out, err = cli(*args)
    clean(code, out, err, (1, 2, 3))
    if len(started) == before:
        return None  # refused before training: no run folder may be left behind
    one_line_error(code, err, "stopped by the test")
    (run,) = [p for p in runs.iterdir() if p.name != "cache"]
    return run.name


def read_everything(runs: Path, run_id: str, group: str | None) -> None:
    """runs, show, table and resume of a run must answer with an exit code, never a traceback."""
    for args in (["runs"], ["runs", "--json"], ["show", run_id], ["show", run_id, "--json"], ["table"]):
        code, out, err = cli(*args, f"--runs-dir={runs}")
        clean(code, out, err, (0, 2) if args[0] == "table" else (0,))
        if args == ["runs", "--json"]:
            assert [i["run_id"] for i in json.loads(out)] == [run_id]
        elif args[0] == "runs":
            assert run_id in out
    if group is not None:
        code, out, err = cli("table", f"--runs-dir={runs}", "--", group)
        clean(code, out, err, (0, 2))
    code, out, err = cli("resume", run_id, f"--runs-dir={runs}")
    clean(code, out, err, (1, 2))


@PROPERTY
@given(
    fields=st.fixed_dictionaries({f: nasty for f in FIELDS}),
    run_id=st.sampled_from([None, "mine", "a.b_c-1"]),
    broken=st.one_of(st.none(), st.none(), st.sampled_from([*FIELDS, "run_id"])),
    bad_bytes=undecodable,
    any_id=nasty,
    changes=edits,
)
def test_any_string_in_any_field_never_breaks_the_store(
    tmp_path: Path,
    stopped_runner: list,
    fields: dict,
    run_id: str | None,
    broken: str | None,
    bad_bytes: str,
    any_id: str,
    changes: dict,
) -> None:
    """Every field drawn; `broken` (when drawn) holds bytes that are not UTF-8, or any --run-id."""
    fields = dict(fields)
    if broken == "run_id":
        run_id = any_id
    elif broken is not None:
        fields[broken] = bad_bytes
    tmp = Path(tempfile.mkdtemp(dir=tmp_path, prefix=f"ex{next(_counter)}-"))
    runs = tmp / "runs"
    made = start_run(tmp, runs, stopped_runner, run_id=run_id, **fields)
    event("refused before a run folder" if made is None else "run made, read, edited, read")
    if made is None:
        assert not runs.exists() or not [p for p in runs.iterdir() if p.name != "cache"]
        return
    assert broken in (None, "run_id"), f"a {broken} that is not UTF-8 was accepted"
    read_everything(runs, made, fields["group"])
    # resume read config.toml back: the same plan and options as the start
    (plan, opts), (plan2, opts2) = stopped_runner[-2:]
    assert [p.resolved_dict() for p in plan2.parts] == [p.resolved_dict() for p in plan.parts]
    assert opts2 == opts and opts2.group == fields["group"]
    edit_summary(runs / made / "summary.json", changes)
    read_everything(runs, made, fields["group"])


@settings(PROPERTY, max_examples=2)
@given(groups=st.lists(nasty, min_size=3, max_size=3), changes=st.lists(tui_edits, min_size=3, max_size=3))
def test_the_tui_runs_list_shows_every_run_whatever_its_strings(
    tmp_path: Path, stopped_runner: list, groups: list[str], changes: list[dict]
) -> None:
    from ssltui.tui.app import SsltuiApp

    tmp = Path(tempfile.mkdtemp(dir=tmp_path, prefix=f"tui{next(_counter)}-"))
    runs = tmp / "runs"
    made = 0
    for k, (group, change) in enumerate(zip(groups, changes)):
        code, out, err = cli("run", *SMOKE, f"--group={group}", f"--runs-dir={runs}", f"--run-id=r{k}")
        clean(code, out, err, (1, 2))
        if (runs / f"r{k}" / "summary.json").exists():
            made += 1
            edit_summary(runs / f"r{k}" / "summary.json", change)

    async def scenario() -> None:
        app = SsltuiApp(runs, reattach=False)
        async with app.run_test(size=(120, 30)) as pilot:
            await runs_list_loaded(app, pilot)
            assert app.screen.query_one("#runs").row_count == made
            await pilot.press("slash", *"[/b", "enter")  # a filter of markup characters
            await pilot.pause()
            assert app.is_running

    asyncio.run(scenario())
