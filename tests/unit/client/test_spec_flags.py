"""``qpumesh train``'s spec flags: ``--gradient-mode`` (a choice) becomes the spec's field."""

from __future__ import annotations

import argparse

import pytest

from qpumesh.client.spec_flags import add_spec_flags, build_spec
from qpumesh.wire.job_spec import JobSpec


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qpumesh train")
    add_spec_flags(parser)
    return parser


def test_gradient_mode_flag_sets_the_field_and_defaults_to_jacobian() -> None:
    parser = _parser()
    assert build_spec(parser.parse_args(["--gradient-mode", "vjp"])).gradient_mode == "vjp"
    assert build_spec(parser.parse_args([])).gradient_mode == JobSpec().gradient_mode == "jacobian"


def test_an_unknown_gradient_mode_is_a_usage_error_listing_the_modes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stop:
        _parser().parse_args(["--gradient-mode", "adjoint"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--gradient-mode: invalid choice: 'adjoint'" in err
    assert "jacobian" in err.rsplit("choose from", 1)[1] and "vjp" in err.rsplit("choose from", 1)[1]
