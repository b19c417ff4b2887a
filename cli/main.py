"""Entry point of the ``vehicle-anomaly`` command (filled in by the CLI work)."""

import sys


def main() -> int:
    print("vehicle-anomaly: no commands yet", file=sys.stderr)
    return 2
