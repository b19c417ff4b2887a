"""Terminal output: plain aligned tables on stdout, progress and spinners on stderr.

Progress bars and spinners only draw on a terminal (and never with ``--quiet``), so piped
output and tests see the results alone. Styled lines (:func:`print_lines`) are coloured on a
terminal only; piped, they are the same text without escape codes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

# One piece of a styled line: its text and a rich style ("red", "bold", ...) or None.
Segment = tuple[str, str | None]
Line = list[Segment]


def is_tty(stream: Any = None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def table(
    headers: Sequence[str] | None, rows: Sequence[Sequence[Any]], *, right: Sequence[int] = ()
) -> str:
    """An aligned plain-text table (two spaces between columns); ``right`` aligns columns right.

    ``headers=None`` makes a table without a header line (label/value pairs, for instance).
    """
    body = [[str(c) for c in row] for row in rows]
    cells = body if headers is None else [[str(h) for h in headers], *body]
    if not cells:
        return ""
    count = len(cells[0])
    widths = [max(len(row[i]) for row in cells) for i in range(count)]
    lines = []
    for row in cells:
        parts = [
            row[i].rjust(widths[i]) if i in right else row[i].ljust(widths[i]) for i in range(count)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def plain(line: Line) -> str:
    """The text of a styled line."""
    return "".join(text for text, _style in line).rstrip()


def can_encode(text: str, stream: Any = None) -> bool:
    """Whether ``stream`` (stdout by default) can write ``text`` (block characters, arrows)."""
    encoding = getattr(stream or sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def print_lines(lines: Sequence[Line], stream: Any = None) -> None:
    """Styled lines on stdout: coloured on a terminal, plain text otherwise; flushed."""
    stream = stream or sys.stdout
    if not is_tty(stream):
        for line in lines:
            print(plain(line), file=stream)
        stream.flush()
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(file=stream, highlight=False, soft_wrap=True, emoji=False, markup=False)
    for line in lines:
        text = Text()
        for piece, style in line:
            text.append(piece, style=style or "")
        text.rstrip()
        console.print(text)
    stream.flush()


def confirm(question: str) -> bool:
    """Ask ``question [y/N]`` on stderr and read the answer from stdin; yes only for y/yes."""
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not answer:
        print(file=sys.stderr)
    return answer.strip().lower() in ("y", "yes")


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextmanager
def spinner(message: str, *, enabled: bool) -> Iterator[None]:
    """A spinner with the elapsed time on stderr while the block runs (terminal only)."""
    if not enabled or not is_tty():
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=stderr_console(),
        transient=True,
    ) as progress:
        progress.add_task(message, total=None)
        yield


def fmt_rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.1f}" if seconds > 0 else "-"
