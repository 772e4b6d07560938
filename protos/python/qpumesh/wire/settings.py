"""Settings that cross the process boundary as text: environment variables and flags.

Every service is configured the same way: a table of ``Option`` entries gives each
setting one name (its ``dest``), one environment variable, one flag and one parser,
so a setting has the same spelling, parser and limits whichever way it arrives.
``add_arguments`` turns a table into argparse flags (unset flags parse as None),
``read_environment`` parses the variables that are set (empty counts as unset) and
``given_flags`` picks the flags that were given; each service decides how they
combine (flags win). The value parsers below turn text into values and raise
``ValueError`` saying what they expected (``units`` has those of durations, rates and
sizes); ``argparse_type`` makes any of them an argparse ``type``.

Why this lives in the shared ``qpumesh.wire``: a service's variables and flags are
its deployment contract (compose files and launchers write them, ``qpumesh fault``
reuses the node's fault settings), and node, coordinator and client may share code
only here. Each service's entry point (its ``python -m`` command, logging, signals)
stays in the service. The module imports nothing heavy, so a command line builds fast.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
"""Text that ``boolean`` reads as True (any case)."""
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})
"""Text that ``boolean`` reads as False (any case; empty too)."""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Option:
    """One setting: its name, environment variable, flag and parser.

    Attributes:
        dest: the setting's name (the field it fills, and the argparse destination
            after ``add_arguments``' ``dest_prefix``).
        env: the environment variable.
        flag: the command-line flag.
        parse: converts text into the value; raises ValueError saying what it expected.
        help: one line for ``--help`` and the docs.
        metavar: placeholder shown by ``--help`` (unused by switches).
        switch: the flag takes no value and sets True when given (``--in-process``);
            the variable is still parsed by ``parse``.
    """

    dest: str
    env: str
    flag: str
    parse: Callable[[str], Any]
    help: str
    metavar: str = ""
    switch: bool = False


def argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap a value parser as an argparse ``type``: its ValueError becomes a usage error.

    argparse then prints the parser's own message after the flag's name, e.g.
    ``argument --port: expected an integer in 0..65535, got 70000``.
    """

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    options: Iterable[Option],
    dest_prefix: str = "",
) -> None:
    """Add one flag per option; unset flags parse as None so the environment can apply.

    Args:
        parser: the parser or argument group to add the flags to.
        options: the settings table.
        dest_prefix: prepended to every ``dest`` (e.g. ``"fault_"``), to keep several
            tables apart in one namespace.
    """
    for option in options:
        help_text = f"{option.help} [env {option.env}]"
        if option.switch:
            parser.add_argument(
                option.flag,
                dest=dest_prefix + option.dest,
                action="store_const",
                const=True,
                default=None,
                help=help_text,
            )
            continue
        parser.add_argument(
            option.flag,
            dest=dest_prefix + option.dest,
            type=argparse_type(option.parse),
            default=None,
            metavar=option.metavar,
            help=help_text,
        )


def read_environment(
    options: Iterable[Option],
    environ: Mapping[str, str],
    error_type: Callable[[str], Exception] = ValueError,
) -> dict[str, Any]:
    """Parse every set variable of ``options`` into a value, by ``dest``.

    Empty (or blank) variables count as unset, so ``FOO=`` in a compose file means
    "default".

    Args:
        options: the settings table (or the part of it to read).
        environ: the environment, usually ``os.environ``.
        error_type: the exception raised for a bad value (the service's config error).

    Raises:
        error_type: ``environment variable NAME: <what was expected>``, for the first
            variable (in table order) whose value is invalid.
    """
    settings: dict[str, Any] = {}
    for option in options:
        raw = environ.get(option.env)
        if raw is None or not raw.strip():
            continue
        try:
            settings[option.dest] = option.parse(raw)
        except ValueError as error:
            raise error_type(f"environment variable {option.env}: {error}") from None
    return settings


def given_flags(options: Iterable[Option], flags: Mapping[str, Any], dest_prefix: str = "") -> dict[str, Any]:
    """Return the flags of ``options`` that were given, by ``dest`` (without the prefix).

    Args:
        options: the settings table.
        flags: parsed flags by destination (e.g. ``vars(args)``); None or absent means
            "not given". Other keys are ignored.
        dest_prefix: the prefix given to ``add_arguments``.
    """
    given: dict[str, Any] = {}
    for option in options:
        value = flags.get(dest_prefix + option.dest)
        if value is not None:
            given[option.dest] = value
    return given


# --------------------------------------------------------------------------- value parsers


def integer(minimum: int, maximum: int | None = None, *, range_prefix: str = "in ") -> Callable[[str], int]:
    """Return a parser of base-10 integers in ``minimum..maximum`` (no upper bound if None).

    Surrounding blanks and ``_`` digit separators are ignored (``"1_000"``).

    Args:
        minimum: smallest accepted value.
        maximum: largest accepted value, or None.
        range_prefix: text before ``minimum..maximum`` in the error message
            (``expected an integer in 1..64``); the coordinator's messages say
            ``expected an integer 0..65535`` and pass "".
    """

    def parse(text: str) -> int:
        try:
            value = int(text.strip().replace("_", ""), 10)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"{range_prefix}{minimum}..{maximum}"
            raise ValueError(f"expected an integer {bound}, got {value}")
        return value

    return parse


def non_negative(unit: str = "") -> Callable[[str], float]:
    """Return a parser of finite numbers >= 0 (``unit``, e.g. "seconds", names them in errors)."""
    what = f"number of {unit}" if unit else "number"

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"expected a {what}, got {text!r}") from None
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"expected a finite {what} >= 0, got {text!r}")
        return value

    return parse


def positive(unit: str = "") -> Callable[[str], float]:
    """Return a parser of finite numbers > 0 (``unit`` names them in errors)."""
    what = f"number of {unit}" if unit else "number"
    at_least_zero = non_negative(unit)

    def parse(text: str) -> float:
        value = at_least_zero(text)
        if value == 0:
            raise ValueError(f"expected a {what} > 0, got {text!r}")
        return value

    return parse


def probability(*, include_one: bool = True, percent: bool = True) -> Callable[[str], float]:
    """Return a parser of probabilities in [0, 1] (or [0, 1) without ``include_one``).

    Args:
        include_one: whether 1 is accepted.
        percent: whether "5%" (= 0.05) is accepted too.
    """
    interval = "[0, 1]" if include_one else "[0, 1)"

    def parse(text: str) -> float:
        stripped = text.strip()
        try:
            value = float(stripped[:-1]) / 100 if percent and stripped.endswith("%") else float(stripped)
        except ValueError:
            raise ValueError(f"expected a probability in {interval}, got {text!r}") from None
        in_range = 0.0 <= value <= 1.0 if include_one else 0.0 <= value < 1.0  # False for NaN
        if not in_range:
            raise ValueError(f"expected a probability in {interval}, got {text!r}")
        return value

    return parse


def boolean(text: str) -> bool:
    """Parse 1/true/yes/on or 0/false/no/off (any case; empty is false).

    Raises:
        ValueError: anything else.
    """
    value = text.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"expected 1/true/yes/on or 0/false/no/off, got {text!r}")


def nonempty(text: str) -> str:
    """Return ``text`` without surrounding blanks.

    Raises:
        ValueError: nothing is left.
    """
    value = text.strip()
    if not value:
        raise ValueError("expected a non-empty value")
    return value


def choice(*options: str) -> Callable[[str], str]:
    """Return a parser accepting one of ``options`` (lower case; input in any case)."""

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {text!r}")
        return value

    return parse
