"""The real-recording evaluation's masking of stale ADS-B state vectors and its long faults."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.detection_real import STALE_ROWS, inject, load

HEADER = "vehicle_id,timestamp,altitude_ft,groundspeed_kt\n"


def _row(vehicle: str, second: int, altitude: float, speed: float) -> str:
    return f"{vehicle},2021-10-07T12:{second // 60:02d}:{second % 60:02d}Z,{altitude},{speed}\n"


def test_a_stale_stretch_of_adsb_rows_keeps_only_its_first_row(tmp_path: Path) -> None:
    """Identical rows of one aircraft for STALE_ROWS or more: the repeats go, shorter runs stay."""
    lines = [HEADER]
    for t in range(10):
        lines.append(_row("a", t, 1000 + 25 * t, 300 + t))
    lines += [_row("a", 10 + t, 1250, 310) for t in range(STALE_ROWS + 5)]  # stale
    lines += [_row("b", t, 2000, 250) for t in range(STALE_ROWS - 1)]  # repeats, not stale
    path = tmp_path / "adsb_fleet.csv"
    path.write_text("".join(lines))
    recording = load(path)
    assert recording.masked == STALE_ROWS + 4
    assert recording.vehicles.count("a") == 11
    assert recording.vehicles.count("b") == STALE_ROWS - 1
    same = tmp_path / "other.csv"
    same.write_text("".join(lines))
    assert load(same).masked == 0  # only the source known to fill with stale vectors


def test_long_faults_are_of_the_four_lasting_kinds_and_the_lengths_asked() -> None:
    """``lengths`` injects drift, stuck, dropout and noise only, each fault that long."""
    rng = np.random.default_rng(0)
    X = rng.normal(50, 5, size=(20_000, 3))
    vehicles = ["v"] * len(X)
    faults = inject(vehicles, X, X.std(axis=0), 0.1, 3, lengths=(60, 300))
    kinds = {k for k in faults.kind if k}
    assert kinds <= {"drift", "stuck", "dropout", "noise"}
    assert len(kinds) >= 3
    sizes = np.bincount([e for e in faults.episode if e is not None])
    sizes = sizes[sizes > 0]
    assert sizes.max() <= 300
    assert np.median(sizes) >= 60
    share = sum(1 for k in faults.kind if k) / len(X)
    assert 0.05 < share < 0.15
