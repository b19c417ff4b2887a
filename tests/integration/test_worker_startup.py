"""``python -m consumer`` as a real process: it refuses to start on bad settings with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_entry_point_exits_2_with_one_line_on_bad_settings(tmp_path: Path) -> None:
    """python -m consumer with a bad variable prints one line naming it and exits 2."""
    env = {**os.environ, "BATCH_MAX_RECORDS": "0", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "consumer"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "BATCH_MAX_RECORDS" in lines[0]
