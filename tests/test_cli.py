import subprocess
import sys

from noisecell import __version__
from noisecell.cli import COMMANDS, main


def test_version_via_module():
    out = subprocess.run([sys.executable, "-m", "noisecell", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"noisecell {__version__}"


def test_every_command_has_a_module():
    import importlib
    for name, (module, _help) in COMMANDS.items():
        mod = importlib.import_module(f"noisecell.commands.{module}")
        assert callable(mod.add_arguments) and callable(mod.run), name


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
