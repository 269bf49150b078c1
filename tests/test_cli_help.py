"""`--help` of every command lists its options with units and defaults; negative SI values parse."""
import argparse
import importlib

import pytest

from noisecell.cli import COMMANDS, HelpFormatter, command_parser, join_negative_values, main


def _parsers():
    """(command words, parser) for every command and every sub-command (cell list/info/check)."""
    out = []
    for name, (module, _help) in COMMANDS.items():
        parser = command_parser(name, importlib.import_module(f"noisecell.commands.{module}"))
        out.append(([name], parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    out.append(([name, sub_name], sub))
    return out


PARSERS = _parsers()
IDS = [" ".join(words) for words, _ in PARSERS]

#: options whose value is a physical quantity -> the unit their help must name
UNITS = {"--bias": "V", "--vdd": "V", "--threshold": "V", "--hysteresis": "V", "--exclude-bias": "V",
         "--trim": "V", "--temp": "°C", "--duration": "s", "--noise-step": "s", "--timeout": "s",
         "--dt": "s", "--sample-period": "s", "--entropy-period": "s", "--flicker-corner": "Hz"}


@pytest.mark.parametrize("words,parser", PARSERS, ids=IDS)
def test_help_lists_every_option(words, parser, capsys):
    # Before the fix the first-stage placeholder parser answered --help and listed no option at all.
    with pytest.raises(SystemExit) as exc:
        main([*words, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for action in parser._actions:
        for opt in action.option_strings:
            assert opt in text, f"{' '.join(words)} --help does not list {opt}"


@pytest.mark.parametrize("words,parser", PARSERS, ids=IDS)
def test_every_value_option_states_default_and_unit(words, parser):
    formatter = HelpFormatter(prog="x")
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0:
            continue
        text = formatter._expand_help(action)
        if not action.required:
            assert "default" in text.lower(), f"{' '.join(words)} {action.option_strings[0]}: no default in {text!r}"
        unit = UNITS.get(action.option_strings[0])
        if unit:
            assert f", {unit}" in text or f" {unit} " in text or (action.metavar or "").endswith(unit), \
                f"{' '.join(words)} {action.option_strings[0]}: help {text!r} names no unit {unit!r}"


def _simulate_parser():
    return command_parser("simulate", importlib.import_module("noisecell.commands.simulate"))


@pytest.mark.parametrize("argv,expected", [
    (["--bias", "-5m"], "-5m"), (["--bias=-5m"], "-5m"), (["--bias", "-0.5m"], "-0.5m"),
    (["--bias", "-.5mV"], "-.5mV"), (["--bias", "-1e-3"], "-1e-3"), (["--bias", "-5"], "-5"),
    (["--bias", "2u"], "2u"),
])
def test_negative_si_values_are_option_arguments(argv, expected):
    parser = _simulate_parser()
    args = parser.parse_args(join_negative_values(parser, [*argv, "--out", "x.npz"]))
    assert args.bias == expected


def test_negative_value_does_not_swallow_a_flag_or_reach_a_flag():
    parser = command_parser("fit", importlib.import_module("noisecell.commands.fit"))
    argv = ["d", "--keep-non-markov", "--exclude-bias", "-3m", "--exclude-bias", "-1m", "--out", "m.json"]
    args = parser.parse_args(join_negative_values(parser, argv))
    assert args.exclude_bias == ["-3m", "-1m"] and args.keep_non_markov
    # a flag (no value) followed by a negative-looking token is left to argparse, which refuses it
    assert join_negative_values(parser, ["--keep-non-markov", "-3m"]) == ["--keep-non-markov", "-3m"]


def test_bias_minus_5m_reaches_the_command(monkeypatch):
    """End to end through main(): the command receives the value, not an argparse error (exit 2)."""
    seen = {}
    mod = importlib.import_module("noisecell.commands.sample")
    monkeypatch.setattr(mod, "run", lambda args: seen.setdefault("bias", args.bias) and 0)
    assert main(["sample", "m.json", "--bias", "-5m", "--n", "10", "--dt", "1us", "--out", "o.npy"]) == 0
    assert seen["bias"] == "-5m"
