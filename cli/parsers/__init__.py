"""The command line's parser: one module per command, the shared options in ``common``."""

from __future__ import annotations

import argparse

from cli.parsers import evaluate, explain, models, shadow, simulate, tail, train
from cli.parsers.common import PROG, Formatter, Parser, global_options

MAIN_EPILOG = """\
quick start (after `make run` in another terminal):
  vehicle-anomaly simulate --train      train on a simulated fleet, then stream it
  vehicle-anomaly tail                  watch the verdicts
  vehicle-anomaly explain --from-topic  why the latest anomaly is one
  vehicle-anomaly evaluate              precision and recall against injected faults

Each command has --help with examples.
"""


def build_parser() -> Parser:
    """The whole command line: the global options, then each command in turn."""
    parser = Parser(
        prog=PROG,
        description="Feed a vehicle fleet to the anomaly pipeline, train models, watch verdicts.",
        epilog=MAIN_EPILOG,
        formatter_class=Formatter,
    )
    global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def command(name: str, help_: str, epilog: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_, description=help_, epilog=epilog, formatter_class=Formatter
        )
        global_options(sub, suppress=True)
        return sub

    for module in (simulate, train, tail, evaluate, explain, shadow, models):
        module.add(command)
    return parser
