"""One converter per dataset: the source files' bytes in, the dataset's rows out.

A machine, sensor node or recording becomes a ``vehicle_id``. Times are timezone-aware; a source
without absolute times gets them from a fixed start at its documented rate. Each converter's
docstring says what the recording is; docs/real-data.md has the details.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from .formats import csv_rows, json_number, npy_integers, number

Cell = str | int
Row = tuple[dt.datetime, str, list[Cell]]  # time, vehicle id, the cells of ``columns``

UTC = dt.UTC
MST = dt.timezone(dt.timedelta(hours=-7), "MST")  # NREL, Golden, Colorado, in January
PACIFIC = ZoneInfo("America/Los_Angeles")
SYNTHETIC_START = dt.datetime(2021, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Table:
    """A dataset: its columns after ``vehicle_id,timestamp``, and its rows in source order."""

    columns: tuple[str, ...]
    rows: list[Row]


ADSB = (
    ("altitude", "altitude_ft"),
    ("groundspeed", "groundspeed_kt"),
    ("vertical_rate", "vertical_rate_fpm"),
    ("track", "track_deg"),
)


def adsb_fleet(data: bytes) -> Table:
    """ADS-B state vectors of 210 aircraft around Paris, 7 Oct 2021, about 1 Hz (OpenSky)."""
    records: list[dict[str, Any]] = json.loads(gzip.decompress(data))
    rows: list[Row] = []
    for r in records:
        # position and velocity arrive in different messages: keep only the rows where every
        # channel was reported (nothing is filled in, so the repeats are the sensor's own)
        if any(r.get(key) is None for key, _ in ADSB):
            continue
        t = dt.datetime.fromtimestamp(r["timestamp"] / 1000, tz=UTC)
        cells: list[Cell] = [json_number(r[key]) for key, _ in ADSB]
        rows.append((t, f"aircraft-{r['icao24']}", [*cells, int(bool(r["onground"]))]))
    return Table((*(name for _, name in ADSB), "onground"), rows)


A320 = (
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
)


def a320_fdr(data: bytes) -> Table:
    """Flight data recorder of one Airbus A320-216 flight, 1 Hz, anonymised."""
    columns: dict[str, dict[str, Any]] = json.loads(gzip.decompress(data))  # column -> row -> value
    rows: list[Row] = []
    for i in sorted(columns["timestamp"], key=int):
        # the source's timestamps are shifted for anonymity; they are kept as they are
        t = dt.datetime.fromtimestamp(columns["timestamp"][i] / 1000, tz=UTC)
        rows.append((t, "a320-fdr-1", [json_number(columns[key][i]) for key, _ in A320]))
    return Table(tuple(name for _, name in A320), rows)


def wsn_motes(data: bytes) -> Table:
    """Suthaharan et al. 2010: a single-hop TelosB wireless sensor network (4 motes), labelled."""
    start = dt.datetime(2010, 5, 9, tzinfo=UTC)  # the date is documented, the time of day not
    rows: list[Row] = []
    for r in csv_rows(data):
        t = start + dt.timedelta(seconds=5 * (int(r["reading"]) - 1))  # one reading every 5 s
        place = "indoor" if r["indoor"] == "1" else "outdoor"
        cells: list[Cell] = [number(r["humidity"]), number(r["temperature"]), int(r["label"])]
        rows.append((t, f"mote-{r['mote_id']}-{place}", cells))
    return Table(("humidity_pct", "temperature_c", "label"), rows)


DAPHNET = (
    "ankle_horiz_fwd",
    "ankle_vert",
    "ankle_horiz_lateral",
    "leg_horiz_fwd",
    "leg_vert",
    "leg_horiz_lateral",
    "trunk_horiz_fwd",
    "trunk_vert",
    "trunk_horiz_lateral",
)


def daphnet_gait(data: bytes) -> Table:
    """Daphnet freezing of gait, subject 6 run 2: 3 tri-axial accelerometers, in mg, 64 Hz."""
    # the source's clock is the time since the session began (written as 1970-01-01 ...): keep
    # the offsets, from a fixed start
    epoch = dt.datetime(1970, 1, 1)
    rows: list[Row] = []
    for r in csv_rows(data):
        t = SYNTHETIC_START + (dt.datetime.fromisoformat(r["timestamp"]) - epoch)
        cells: list[Cell] = [number(r[axis]) for axis in DAPHNET]
        rows.append((t, "daphnet-S06R02", [*cells, int(r["is_anomaly"])]))
    return Table((*(axis + "_mg" for axis in DAPHNET), "label"), rows)


def ecg_mitdb208(data: bytes) -> Table:
    """MIT-BIH record 208, lead MLII, 5 min at 360 Hz, raw 11-bit ADC counts (SciPy's ecg.dat)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        values = npy_integers(archive.read("ecg.npy"))
    rows: list[Row] = [
        (SYNTHETIC_START + dt.timedelta(microseconds=round(i * 1e6 / 360)), "ecg-mitdb208", [v])
        for i, v in enumerate(values)
    ]
    return Table(("ecg_adc",), rows)


def _pacific_hours(data: bytes, vehicle: str, layout: str) -> Iterator[Row]:
    last: dt.datetime | None = None
    for r in csv_rows(data):
        local = dt.datetime.strptime(r["date"], layout)
        t = local.replace(tzinfo=PACIFIC)
        if last is not None and t.astimezone(UTC) <= last:
            t = local.replace(tzinfo=PACIFIC, fold=1)  # the hour that repeats in autumn
            if t.astimezone(UTC) <= last:
                continue
        last = t.astimezone(UTC)
        yield t, vehicle, [number(r["temp"])]


def city_temps(seattle: bytes, san_francisco: bytes) -> Table:
    """Hourly air temperature in Seattle and San Francisco, 2010 (NOAA), in degrees F."""
    rows = [
        *_pacific_hours(seattle, "seattle", "%Y/%m/%d %H:%M"),
        *_pacific_hours(san_francisco, "san-francisco", "%Y/%m/%d %H:%M:%S"),
    ]
    return Table(("temp_f",), rows)


def pv_serf_east_power(data: bytes) -> Table:
    """NREL SERF east PV system: inverter AC power, every 15 min, Jul-Oct 2016."""
    rows: list[Row] = [
        (dt.datetime.fromisoformat(r["measured_on"]), "pv-serf-east", [number(r["ac_power"])])
        for r in csv_rows(data)
    ]
    return Table(("ac_power",), rows)


# Left out: ac_current__779 (always 0 in this file) and das_temperature__785 (an exact copy of
# ac_power__773 in this file).
SERF_WEST = (
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
)


def pv_serf_west_inverter(data: bytes) -> Table:
    """NREL SERF west PV system: 13 inverter, array and weather channels, 15 min, Jan 2022."""
    rows: list[Row] = []
    for r in csv_rows(data):
        # the source's times are naive local times
        t = dt.datetime.fromisoformat(r[""]).replace(tzinfo=MST)
        rows.append((t, "pv-serf-west", [number(r[column]) for column in SERF_WEST]))
    names = (c.split("__")[0].replace("inveter", "inverter") for c in SERF_WEST)
    return Table(tuple(names), rows)


def water_flow(data: bytes) -> Table:
    """Hourly water flow of a pipe (l/s), Mar-May 2022 (river's water-flow dataset)."""
    rows: list[Row] = [
        (dt.datetime.fromisoformat(r["Time"]), "water-pipe-1", [number(r["Water flow [l/s]"])])
        for r in csv_rows(data)
    ]
    return Table(("water_flow_lps",), rows)


# dataset name -> converter, called with the files that sources.SOURCES lists for it, in order
CONVERTERS: Mapping[str, Callable[..., Table]] = MappingProxyType(
    {
        "adsb_fleet": adsb_fleet,
        "a320_fdr": a320_fdr,
        "wsn_motes": wsn_motes,
        "daphnet_gait": daphnet_gait,
        "ecg_mitdb208": ecg_mitdb208,
        "city_temps": city_temps,
        "pv_serf_east_power": pv_serf_east_power,
        "pv_serf_west_inverter": pv_serf_west_inverter,
        "water_flow": water_flow,
    }
)
