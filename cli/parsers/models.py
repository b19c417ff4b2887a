"""`models`: list, activate, delete or shadow model versions."""

from __future__ import annotations

from cli.parsers.common import AddCommand, Formatter, Parser, global_options

EPILOG = """\
examples:
  vehicle-anomaly models list                           ROLE: active, or candidate (shadow)
  vehicle-anomaly models activate 20240115100000        roll back (or forward)
  vehicle-anomaly models delete 20240114090000          the active version cannot be deleted
  vehicle-anomaly models shadow 20240116090000          score it in shadow (the candidate)
  vehicle-anomaly models unshadow 20240116090000        stop scoring it in shadow
"""


def add(command: AddCommand) -> None:
    """Add the command to the parser."""
    models = command("models", "list, activate, delete or shadow model versions", EPILOG)
    actions = models.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    listing = actions.add_parser(
        "list", help="every version, newest first", formatter_class=Formatter
    )
    listing.add_argument("--json", action="store_true", help="print the api's answer as JSON")
    global_options(listing, suppress=True)
    activate = actions.add_parser(
        "activate", help="make VERSION the active model", formatter_class=Formatter
    )
    activate.add_argument("version", metavar="VERSION")
    global_options(activate, suppress=True)
    delete = actions.add_parser(
        "delete", help="delete VERSION (not the active one)", formatter_class=Formatter
    )
    delete.add_argument("version", metavar="VERSION")
    global_options(delete, suppress=True)
    start_shadow = actions.add_parser(
        "shadow",
        help="make VERSION the shadow candidate: the workers score it beside the active one",
        formatter_class=Formatter,
    )
    start_shadow.add_argument("version", metavar="VERSION")
    global_options(start_shadow, suppress=True)
    stop_shadow = actions.add_parser(
        "unshadow", help="stop scoring VERSION in shadow", formatter_class=Formatter
    )
    stop_shadow.add_argument("version", metavar="VERSION")
    global_options(stop_shadow, suppress=True)
    models.set_defaults(run="cli.models:run")
