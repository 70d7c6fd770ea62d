"""Property-based (hypothesis): random presets, `--set` strings and command lines never end in a
traceback. The parser either accepts (exit 0) or refuses in one line (ConfigError, exit 2).

Nothing here can train: `run` always gets `--dry-run` right after it (a flag no later token can
undo), and `_execute`, the only door to training, is replaced by a tripwire."""

from __future__ import annotations

import io
import math
import os
import sys
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import ssltui.cli.main as cli_main
from ssltui.core.config import build_run_config, parse_set_options, schema_keys
from ssltui.core.errors import ConfigError
from ssltui.core.presets import Plan, resolve

KEYS = schema_keys()
# SSLTUI_FUZZ_EXAMPLES=5000 for a deeper (random, not derandomized) search on a quiet machine.
_DEEP = int(os.environ.get("SSLTUI_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_DEEP or 150,
    deadline=None,
    derandomize=not _DEEP,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---------------------------------------------------------------- value strategies

text = st.text(max_size=12)
scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    text,
    st.sampled_from(["sgd", "cosine", "supervised", "simclr", "linear", "knn", "0.1"]),
    st.integers(min_value=-2, max_value=300),
    st.floats(min_value=-1, max_value=2),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)
key_names = st.one_of(st.sampled_from(KEYS), st.sampled_from([k.rpartition(".")[2] for k in KEYS]), text)


def toml_str(t: str) -> str:
    """A TOML basic string (JSON's escapes differ: surrogate pairs, raw DEL)."""
    return (
        '"'
        + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else "\\" + c if c in '"\\' else c for c in t)
        + '"'
    )


def toml_value(v) -> str:
    """A TOML literal for any value the strategies make (inline tables for dicts)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_str(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def set_string(key: str, v) -> str:
    return f"{key}={toml_value(v) if not isinstance(v, str) else v}"


# Plausible values reach the acceptance paths (and the checks after them) far more often.
plausible = st.sampled_from(
    [
        1,
        0,
        2,
        3,
        64,
        -1,
        0.5,
        0.1,
        0.05,
        1e30,
        True,
        False,
        "sgd",
        "lars",
        "adamw",
        "cosine",
        "step",
        "none",
        "bf16",
        [1.0],
        [0.1, 0.5],
        [],
        "x",
    ]
)
set_strings = st.one_of(
    text, st.builds(set_string, key_names, values), st.builds(set_string, st.sampled_from(KEYS), plausible)
)


def _typed_values():
    """Mostly in-range values of the common types (ints, fractions, choices, flags)."""
    return st.one_of(
        st.integers(1, 40),
        st.floats(0.001, 0.5),
        st.booleans(),
        st.sampled_from(["sgd", "adamw", "cosine", "constant", "auto", "off"]),
    )


section_names = ["data", "pretrain", "simclr", "rotnet", "knn", "supervised", "linear", "semi", "runtime"]
section = st.dictionaries(
    st.one_of(st.sampled_from(sorted({k.rpartition(".")[2] for k in KEYS})), text), values, max_size=4
)
known_docs = st.fixed_dictionaries(
    {},
    optional={
        "description": values,
        "method": st.one_of(st.sampled_from(["supervised", "simclr", "rotnet"]), values),
        "evaluation": st.one_of(st.lists(st.sampled_from(["supervised", "linear", "semi", "knn"]), max_size=3), values),
        "labels": st.one_of(st.lists(st.floats(min_value=-0.5, max_value=1.5), max_size=3), values),
        "seeds": st.one_of(st.lists(st.integers(-3, 5), max_size=3), values),
        "study": st.one_of(
            st.lists(
                st.one_of(
                    st.sampled_from(["smoke", "supervised", "nope"]),
                    st.dictionaries(st.sampled_from(["preset", "labels", "seeds"]), values, max_size=2),
                ),
                max_size=3,
            ),
            values,
        ),
        **{name: st.one_of(section, values) for name in section_names},
    },
)
preset_docs = st.one_of(
    st.builds(lambda known, other: {**other, **known}, known_docs, st.dictionaries(text, values, max_size=2)),
    st.builds(
        lambda method, secs: {"method": method, **secs},
        st.sampled_from(["supervised", "simclr", "rotnet"]),
        st.fixed_dictionaries(
            {},
            optional={
                name: st.dictionaries(
                    st.sampled_from([k.rpartition(".")[2] for k in KEYS if k.startswith(name + ".")]),
                    st.one_of(_typed_values(), plausible),
                    max_size=3,
                )
                for name in section_names
            },
        ),
    ),
)


def _check_plan(plan: Plan) -> None:
    """An accepted plan must survive what `resume` does with it: TOML out, TOML back in."""
    from ssltui.core.config import RunOptions
    from ssltui.core.plan import plan_to_toml

    raw = tomllib.loads(plan_to_toml(plan, RunOptions()))
    # config.toml holds the sections each part reads: those come back identical
    assert [build_run_config(p).resolved_dict() for p in raw["parts"]] == [p.resolved_dict() for p in plan.parts]


# ---------------------------------------------------------------- properties


@FUZZ
@given(st.lists(set_strings, max_size=4))
def test_set_options_parse_or_refuse(options: list[str]) -> None:
    try:
        out = parse_set_options(options)
    except ConfigError as exc:
        assert exc.message and "\n" not in exc.message
        return
    assert isinstance(out, dict)


@FUZZ
@given(
    doc=preset_docs,
    sets=st.lists(set_strings, max_size=3),
    method=st.one_of(st.none(), st.sampled_from(["supervised", "simclr", "rotnet", "moco"])),
    evaluation=st.one_of(
        st.none(), st.lists(st.sampled_from(["supervised", "linear", "semi", "knn", "x"]), max_size=3)
    ),
    labels=st.one_of(st.none(), st.lists(st.floats(allow_nan=True), max_size=3)),
    seeds=st.one_of(st.none(), st.lists(st.integers(-3, 2**40), max_size=3)),
)
def test_random_presets_resolve_or_refuse(
    tmp_path: Path, doc: dict, sets: list[str], method, evaluation, labels, seeds
) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text("\n".join(f"{toml_str(k)} = {toml_value(v)}" for k, v in doc.items()) + "\n")
    try:
        plan = resolve(str(path), method=method, evaluation=evaluation, labels=labels, seeds=seeds, sets=sets)
    except ConfigError as exc:
        assert exc.message and "\n" not in exc.message
        event("refused")
        return
    event("accepted")
    _check_plan(plan)


@FUZZ
@given(st.text(max_size=200))
def test_random_preset_text_resolves_or_refuses(tmp_path: Path, body: str) -> None:
    path = tmp_path / "text.toml"
    path.write_text(body)
    try:
        _check_plan(resolve(str(path)))
    except ConfigError as exc:
        assert "\n" not in exc.message


RUN_OPTIONS = [
    "--preset",
    "-p",
    "--method",
    "--evaluation",
    "--labels",
    "--seeds",
    "--device",
    "--data",
    "--set",
    "--group",
    "--run-id",
    "--resume",
    "--no-cache",
    "--json",
    "--quiet",
    "-q",
    "--help",
    "--data-dir",
    "--",
]
OPTION_VALUES = [
    "smoke",
    "supervised",
    "paper",
    "nope",
    "simclr",
    "rotnet",
    "linear,semi",
    "knn",
    "0.1",
    "0.01,0.1",
    "1.5",
    "0",
    "-1",
    "0,1",
    "cpu",
    "cuda",
    "auto",
    "synthetic",
    "cifar10",
    "x=1",
    "supervised.lr=0.2",
    "supervised.batch_size=0",
    "labels=0.5",
    "semi.frozen_stages=9",
    "",
]
tokens = st.one_of(st.sampled_from(RUN_OPTIONS), st.sampled_from(OPTION_VALUES), text)
VALUED = [
    "--preset",
    "--method",
    "--evaluation",
    "--labels",
    "--seeds",
    "--device",
    "--data",
    "--set",
    "--group",
    "--run-id",
]
pairs = st.lists(st.tuples(st.sampled_from(VALUED), st.sampled_from(OPTION_VALUES)), max_size=4).map(
    lambda ps: [t for p in ps for t in p]
)
commands = st.one_of(
    st.sampled_from(["run", "resume", "runs", "presets", "show"]),
    text.filter(lambda t: not t.startswith("-") and t not in ("run", "resume", "runs", "presets", "show", "")),
)


@FUZZ
@given(command=commands, rest=st.one_of(st.lists(tokens, max_size=8), pairs))
def test_random_command_lines_exit_0_or_2_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, rest: list[str]
) -> None:
    monkeypatch.setenv("SSLTUI_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("SSLTUI_DEBUG", raising=False)

    def tripwire(*args, **kwargs):
        raise AssertionError("the parser let a command line reach training")

    monkeypatch.setattr(cli_main, "_execute", tripwire)
    argv = ["ssltui", command, *(["--dry-run"] if command == "run" else []), *rest]
    monkeypatch.setattr(sys, "argv", argv)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            cli_main.entry()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    message = err.getvalue()
    event(f"exit {code}")
    assert "Traceback" not in message and "internal error" not in message, (argv, message)
    assert code in (0, 2), (argv, code, message)
    if code == 2:
        assert len(message.strip().splitlines()) == 1 and message.startswith("ssltui: error:"), (argv, message)
