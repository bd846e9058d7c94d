"""README's two set-up commands are the ones CI and the demo test run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_command(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```sh\n(.+?)\n```", text, re.S)
    assert match, f"README.md has no command after <!-- {marker} -->"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command() -> None:
    command = readme_command("test-command")
    lines = [ln.strip() for ln in (ROOT / ".ci/run").read_text().splitlines()]
    code = [ln for ln in lines if ln and not ln.startswith("#")]
    assert code[-1] == command, "the last command of .ci/run must be README's test command"


def test_readme_demo_command_installs_and_runs_the_demo() -> None:
    command = readme_command("demo-command")
    install, _, run = command.partition(" && ")
    assert shlex.split(install)[:4] == ["python3", "-m", "pip", "install"]
    assert ".[demo]" in shlex.split(install)
    assert shlex.split(run)[:2] == ["fedmq", "demo"]


def test_readme_has_exactly_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert setup.count("```sh") == 2


def test_configuration_reference_lists_every_option() -> None:
    """The README's reference stays true: every option of every service is in it."""
    import argparse

    from fedmq.cli import build_parser

    text = (ROOT / "README.md").read_text()
    reference = text.split("## Configuration reference", 1)[1]
    parser = build_parser(["aggregator", "devices", "device", "demo", "watch"])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {option}"
        for name, command in sub.choices.items()
        for action in command._actions
        for option in action.option_strings[-1:]
        if option != "--help" and f"`{option}" not in reference
    ]
    assert not missing, f"README's configuration reference lacks: {missing}"
