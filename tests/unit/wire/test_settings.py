"""Shared settings machinery (qpumesh.wire.settings): option tables, environment, flags, parsers."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from qpumesh.wire.settings import (
    Option,
    add_arguments,
    argparse_type,
    boolean,
    choice,
    given_flags,
    integer,
    non_negative,
    nonempty,
    positive,
    probability,
    read_environment,
)


class SettingError(ValueError):
    pass


OPTIONS = (
    Option("port", "T_PORT", "--port", integer(0, 65535), "port", "PORT"),
    Option("rate", "T_RATE", "--rate", probability(), "rate", "P"),
    Option("verbose", "T_VERBOSE", "--verbose", boolean, "talk", switch=True),
)


def _parse(*argv: str, dest_prefix: str = "") -> dict[str, object]:
    parser = argparse.ArgumentParser()
    add_arguments(parser, OPTIONS, dest_prefix=dest_prefix)
    return vars(parser.parse_args(list(argv)))


# --------------------------------------------------------------------------- options


def test_unset_flags_parse_as_none_and_given_ones_are_parsed() -> None:
    assert _parse() == {"port": None, "rate": None, "verbose": None}
    assert _parse("--port", "80", "--rate", "5%", "--verbose") == {"port": 80, "rate": 0.05, "verbose": True}


def test_switches_take_no_value() -> None:
    with pytest.raises(SystemExit):
        _parse("--verbose", "yes")


def test_dest_prefix_keeps_tables_apart_and_given_flags_strips_it() -> None:
    flags = _parse("--port", "1", dest_prefix="t_")
    assert flags == {"t_port": 1, "t_rate": None, "t_verbose": None}
    assert given_flags(OPTIONS, flags, dest_prefix="t_") == {"port": 1}
    assert given_flags(OPTIONS, {"port": 0, "rate": None, "other": 3}) == {"port": 0}


def test_flags_can_go_into_an_argument_group() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser.add_argument_group("group"), OPTIONS[:1])
    assert parser.parse_args(["--port", "2"]).port == 2


def test_help_names_the_environment_variable() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, OPTIONS)
    text = parser.format_help()
    assert "[env T_PORT]" in text and "[env T_VERBOSE]" in text


def test_a_bad_flag_is_a_usage_error_with_the_parser_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _parse("--port", "70000")
    assert caught.value.code == 2
    assert "argument --port: expected an integer in 0..65535, got 70000" in capsys.readouterr().err


def test_argparse_type_turns_value_errors_into_argument_type_errors() -> None:
    convert = argparse_type(integer(0))
    assert convert("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="expected an integer >= 0, got -1"):
        convert("-1")


def test_read_environment_parses_set_variables_and_skips_empty_ones() -> None:
    environ = {"T_PORT": " 8080 ", "T_RATE": "", "T_VERBOSE": "  ", "OTHER": "x"}
    assert read_environment(OPTIONS, environ) == {"port": 8080}
    assert read_environment(OPTIONS, {"T_VERBOSE": "on", "T_RATE": "0.5"}) == {"rate": 0.5, "verbose": True}


def test_read_environment_names_the_first_bad_variable_with_the_given_error_type() -> None:
    with pytest.raises(SettingError) as caught:
        read_environment(OPTIONS, {"T_RATE": "2", "T_VERBOSE": "maybe"}, SettingError)
    assert str(caught.value) == "environment variable T_RATE: expected a probability in [0, 1], got '2'"
    with pytest.raises(ValueError, match=r"^environment variable T_PORT: expected an integer, got 'x'$"):
        read_environment(OPTIONS, {"T_PORT": "x"})


# --------------------------------------------------------------------------- parsers


def test_integer_bounds_and_separators() -> None:
    parse = integer(1, 64)
    assert parse(" 12 ") == 12 and integer(0)("1_000") == 1000 and integer(0)("+5") == 5
    with pytest.raises(ValueError, match=r"^expected an integer, got '1\.5'$"):
        parse("1.5")
    with pytest.raises(ValueError, match=r"^expected an integer in 1\.\.64, got 65$"):
        parse("65")
    with pytest.raises(ValueError, match=r"^expected an integer >= 1, got 0$"):
        integer(1)("0")
    with pytest.raises(ValueError, match=r"^expected an integer 0\.\.9, got 10$"):
        integer(0, 9, range_prefix="")("10")


def test_non_negative_and_positive_numbers() -> None:
    assert non_negative()("0") == 0.0 and non_negative("seconds")(" 2.5 ") == 2.5
    assert positive()("1e-3") == 0.001
    with pytest.raises(ValueError, match=r"^expected a number, got 'soon'$"):
        non_negative()("soon")
    with pytest.raises(ValueError, match=r"^expected a finite number of seconds >= 0, got 'inf'$"):
        non_negative("seconds")("inf")
    for bad in ("-1", "nan"):
        with pytest.raises(ValueError, match=r"finite number >= 0"):
            non_negative()(bad)
    with pytest.raises(ValueError, match=r"^expected a number > 0, got '0'$"):
        positive()("0")
    with pytest.raises(ValueError, match=r"^expected a number of ms > 0"):
        positive("ms")("0.0")


def test_probability_variants() -> None:
    closed, half_open = probability(), probability(include_one=False, percent=False)
    assert closed("1") == 1.0 and closed("5%") == pytest.approx(0.05) and closed(" 0.2 ") == 0.2
    assert half_open("0.999") == 0.999
    for bad in ("1.5", "-0.1", "nan", "often", "150%"):
        with pytest.raises(ValueError, match=r"probability in \[0, 1\]"):
            closed(bad)
    for bad in ("1", "5%", "nan"):
        with pytest.raises(ValueError, match=r"probability in \[0, 1\)"):
            half_open(bad)


def test_boolean_words() -> None:
    for word in ("1", "TRUE", "yes", " on "):
        assert boolean(word) is True
    for word in ("0", "False", "no", "off", ""):
        assert boolean(word) is False
    with pytest.raises(ValueError, match=r"^expected 1/true/yes/on or 0/false/no/off, got 'maybe'$"):
        boolean("maybe")


def test_nonempty_and_choice() -> None:
    assert nonempty("  qpu-1 ") == "qpu-1"
    with pytest.raises(ValueError, match="non-empty"):
        nonempty("   ")
    parse = choice("batched", "qsim")
    assert parse(" QSim ") == "qsim"
    with pytest.raises(ValueError, match=r"^expected one of batched, qsim, got 'gpu'$"):
        parse("gpu")


# --------------------------------------------------------------------------- entry points


def test_the_module_imports_nothing_heavy(modules_loaded: Any) -> None:
    # Service command lines are built from it: `--help` must stay fast.
    assert modules_loaded("import qpumesh.wire.settings", ["numpy", "grpc", "torch", "cirq"]) == []
