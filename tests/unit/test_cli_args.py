"""The CLI's argument checking: every numeric option of every subcommand has a checked type, errors are one line.

The parser is walked, not listed: a new subcommand or option is covered by the introspection tests below as soon
as it uses :func:`aiotstream.cli.count` / :func:`aiotstream.cli.number`, and fails them if it uses a bare
``int``/``float``.
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiotstream
from aiotstream.cli import QuietRustPanics, _root_cause, build_parser, count, main, number
from aiotstream.errors import AiotError

ROOT = Path(__file__).resolve().parents[2]


def _parsers(p: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                       argparse.ArgumentParser]]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), sub
                yield from _parsers(sub, path + (name,))


def _numeric_options() -> list[tuple[tuple[str, ...], str, argparse.Action]]:
    out = []
    for path, sub in _parsers(build_parser()):
        for a in sub._actions:
            if a.option_strings and a.type is not None:
                out.append((path, a.option_strings[-1], a))
    return out


def test_no_numeric_option_uses_a_bare_int_or_float() -> None:
    bare = [(" ".join(path), opt) for path, opt, a in _numeric_options() if a.type in (int, float)]
    assert not bare, f"use aiotstream.cli.count()/number(): {bare}"
    assert len(_numeric_options()) >= 25  # the walk found the options (validate..train)


def _required_args(path: tuple[str, ...]) -> list[str]:
    """Enough to get past 'required' errors, so the option under test is what fails."""
    need = {"run": ["--site", "s.toml"], "replay": ["f.csv", "--site", "s.toml"],
            "train": ["--site", "s", "--registry", "r", "--name", "n", "--version", "1"]}
    return need.get(path[-1], [])


@pytest.mark.parametrize(("path", "option", "action"), _numeric_options(),
                         ids=lambda v: v if isinstance(v, str) else " ".join(v) if isinstance(v, tuple) else "")
@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "x", "1e400", "99999999999999999999"])
def test_every_numeric_option_rejects_out_of_range_values_in_one_line(
        path: tuple[str, ...], option: str, action: argparse.Action, bad: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    try:
        value = action.type(bad)  # type: ignore[misc]
    except argparse.ArgumentTypeError:
        value = None
    if value is not None:  # e.g. --seed 99999999999999999999 is out of range, "-1" is fine for no option
        pytest.fail(f"{' '.join(path)} {option} accepted {bad!r} as {value!r}")
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*path, *_required_args(path), option, bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert option in err and err.startswith(f"aiotstream {' '.join(path)}: argument ")


def test_zero_assets_is_an_error_not_five(capsys: pytest.CaptureFixture[str]) -> None:
    # regression: `--assets 0` was silently replaced by 5 (`args.assets or 5`)
    for cmd in (["simulate"], ["demo"]):
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--assets", "0"])
        assert exc.value.code == 2
        assert "--assets: must be from 1 to" in capsys.readouterr().err


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.integers(-(10**20), 10**20).map(str), st.text(max_size=12)), st.integers(-5, 5),
       st.integers(0, 10))
def test_count_accepts_exactly_the_whole_numbers_in_range(text: str, lo: int, span: int) -> None:
    hi = lo + span
    try:
        expected: int | None = int(text.strip(), 10)
    except ValueError:
        expected = None
    if expected is not None and not lo <= expected <= hi:
        expected = None
    try:
        got: int | None = count(lo, hi)(text)
    except argparse.ArgumentTypeError as exc:
        assert str(exc) and "\n" not in str(exc)
        got = None
    assert got == expected


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=12)))
def test_number_never_returns_a_non_finite_or_out_of_range_value(text: str) -> None:
    try:
        v = number(0, 100, above=True)(text)
    except argparse.ArgumentTypeError as exc:
        assert "\n" not in str(exc)
        return
    assert math.isfinite(v) and 0 < v <= 100


def test_version_names_the_package_version_and_the_checkout_commit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip()
    if not head:
        pytest.skip("not a git checkout (git or .git missing): the commit comes from aiotstream/_build.py")
    assert out.startswith(f"aiotstream {aiotstream.__version__}+g{head[:12]}")
    assert out == f"aiotstream {aiotstream.code_version()}"


def test_root_cause_is_the_innermost_error_in_one_line() -> None:
    try:
        try:
            raise ValueError("bad thing\nsecond line")
        except ValueError as e:
            raise RuntimeError("wrapper") from e
    except RuntimeError as outer:
        assert _root_cause(outer) == "ValueError: bad thing"
    assert _root_cause(AiotError("named fix")) == "named fix"
    try:
        try:
            try:
                raise OSError("Couldn't deserialize thrift")
            except OSError as e:
                raise AiotError("replay f.parquet: cannot read on from row 5") from e
        except AiotError as e:
            raise RuntimeError("(src/inputs.rs:453:50): error calling next_batch") from e
    except RuntimeError as outer:
        assert _root_cause(outer) == "replay f.parquet: cannot read on from row 5"  # ours names the thing


def test_rust_panic_reports_are_dropped_and_other_stderr_passes(capfd: pytest.CaptureFixture[str]) -> None:
    with QuietRustPanics():
        os.write(2, b"a log line\n")
        os.write(2, b"thread '<unnamed>' panicked at src/run.rs:133:25:\nBox<dyn Any>\nstack backtrace:\n"
                    b"   0: std::panicking::begin_panic\nnote: run with `RUST_BACKTRACE=1`\n")
    assert capfd.readouterr().err == "a log line\n"
