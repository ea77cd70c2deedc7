"""A quiet terminal: Ray's and Ray Tune's own output only with --verbose, no notice about the token
authentication of the Ray kdsweep starts itself, lines not folded when stdout is piped. What a
real sweep prints is checked on the resumed sweep of tests/test_sweep.py (no second sweep here)."""

from __future__ import annotations

import logging

import pytest

from pipeline.__main__ import PIPED_WIDTH, _console, _say, parse_args
from pipeline.sweeps import output


def test_verbose_is_a_sweep_option_and_off_by_default():
    args = parse_args(["sweep", "loss", "--verbose", "seed=1"])
    assert args.verbose is True and args.study == "loss" and args.overrides == ["seed=1"]
    assert parse_args(["sweep", "loss"]).verbose is False


@pytest.mark.parametrize("value", [None, "", "0", "false"])
def test_quiet_by_default_ray_keeps_trials_output_and_info_logs_to_itself(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(output.VERBOSE, raising=False)
    else:
        monkeypatch.setenv(output.VERBOSE, value)
    assert not output.verbose()
    assert output.ray_init_options() == {"log_to_driver": False, "logging_level": logging.WARNING}


def test_verbose_brings_rays_output_back(monkeypatch):
    monkeypatch.setenv(output.VERBOSE, "1")
    assert output.verbose()
    assert output.ray_init_options() == {"log_to_driver": True, "logging_level": logging.INFO}


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def auth_log():
    """What Ray's authentication logger lets through, emitted by Ray's own warning functions
    (so that a change of their wording in a new Ray fails here)."""
    log = logging.getLogger(output.AUTH_LOGGER)
    kept = _Kept()
    log.addHandler(kept)
    yield kept
    log.removeHandler(kept)


def test_only_the_local_rays_token_notice_is_dropped(monkeypatch, auth_log):
    from ray._private.authentication import authentication_token_setup as ray_auth

    monkeypatch.delenv(output.VERBOSE, raising=False)
    with output.local_auth_notice_dropped():
        ray_auth._warn_token_auth_enabled()  # what ray.init(address="local") says on every run
        ray_auth._warn_token_auth_disabled()  # any other message about authentication stays
    assert len(auth_log.messages) == 1 and "Token authentication is disabled" in auth_log.messages[0]
    ray_auth._warn_token_auth_enabled()  # outside: joining a cluster (RAY_ADDRESS) hides nothing
    assert output.AUTH_NOTICE in auth_log.messages[-1]
    assert not logging.getLogger(output.AUTH_LOGGER).filters


def test_verbose_keeps_the_token_notice(monkeypatch, auth_log):
    from ray._private.authentication import authentication_token_setup as ray_auth

    monkeypatch.setenv(output.VERBOSE, "1")
    with output.local_auth_notice_dropped():
        ray_auth._warn_token_auth_enabled()
    assert len(auth_log.messages) == 1 and output.AUTH_NOTICE in auth_log.messages[0]


def test_piped_output_keeps_a_long_line_whole(capsys):
    console = _console()  # stdout is captured here: not a terminal, as in a log or CI
    assert not console.is_terminal and console.width == PIPED_WIDTH
    line = "kdsweep sweep " + " ".join(f"key{i}=value{i}" for i in range(40)) + "   MLflow: sqlite:///x.db"
    _say(console)(line)
    assert capsys.readouterr().out == line + "\n"
