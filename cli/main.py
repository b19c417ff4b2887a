"""``vehicle-anomaly``: feed a fleet, train models, watch verdicts, measure the detector.

Every failure is one line on stderr (``vehicle-anomaly: ...``) and exit status 1 (the
operation failed) or 2 (a bad argument or setting); Ctrl-C stops a command with status 130
(``simulate`` prints its summary first and exits 0). ``--verbose`` shows the clients' logs,
``VEHICLE_ANOMALY_DEBUG=1`` shows a traceback for an unexpected error.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Sequence

from cli.errors import CliError
from cli.parsers import build_parser
from cli.parsers.common import PROG

__all__ = ["build_parser", "main"]


def _load(target: str) -> Callable[..., int]:
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _fail(message: str, code: int) -> int:
    first = " ".join(str(message).split()) or "failed"
    print(f"{PROG}: {first}", file=sys.stderr, flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("choose a command: simulate, train, tail, evaluate, explain, shadow or models")
    if args.command == "models" and args.action is None:
        parser.error(
            "models needs an action: list, activate VERSION, delete VERSION, "
            "shadow VERSION or unshadow VERSION"
        )
    from cli.kafkaio import quiet_kafka_logs

    quiet_kafka_logs(args.verbose)
    if not args.verbose:
        import warnings

        warnings.simplefilter("ignore")  # library warnings are not the operator's business
    try:
        from cli.config import build_context

        context = build_context(
            api=args.api,
            api_key=args.api_key,
            bootstrap=args.bootstrap,
            connect_timeout=args.connect_timeout,
            verbose=args.verbose,
        )
        return _load(args.run)(args, context)
    except CliError as error:
        return _fail(error.message, error.code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): quietly stop
        with _devnull():
            pass
        return 0
    except Exception as error:
        if os.environ.get("VEHICLE_ANOMALY_DEBUG"):
            raise
        text = textwrap.shorten(str(error) or type(error).__name__, 300)
        return _fail(
            f"unexpected error: {type(error).__name__}: {text} (VEHICLE_ANOMALY_DEBUG=1 shows the traceback)",
            1,
        )


class _devnull:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""

    def __enter__(self) -> None:
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, sys.stdout.fileno())
            os.close(fd)
        except (OSError, ValueError):
            pass

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
