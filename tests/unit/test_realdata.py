"""scripts/realdata (`make real-data`): converters, the CSV layout, checksums and --only.

Every source file here is a few lines built in the test, in the source's own format; nothing is
downloaded.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import inspect
import io
import json
import struct
import sys
import zipfile
from pathlib import Path

import pytest

from cli.readers import read_records

# scripts/ is not a package: the helper package is found the way scripts/fetch-real-data finds
# it. scripts/ then comes off the path, so that its kafka/ directory (Maven files, no Python)
# cannot pose as a `kafka` namespace package for the other tests in this process.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import realdata.command as command
import realdata.convert as convert
import realdata.csvout as csvout
import realdata.download as download
from realdata.errors import ChecksumError
from realdata.sources import SOURCES, Archive, DataFile, Source

sys.path.remove(str(Path(__file__).resolve().parents[2] / "scripts"))


def csv_lines(table: convert.Table) -> list[str]:
    """The lines of the CSV file the table becomes, header first."""
    rows = csvout.ordered_rows(table)
    return [",".join((*csvout.HEADER, *table.columns)), *(",".join(row) for row in rows)]


def state(icao24: str, ms: int, *values: float | None, onground: bool = False) -> dict[str, object]:
    """One ADS-B state vector as the traffic sample stores it."""
    channels = dict(zip(("altitude", "groundspeed", "vertical_rate", "track"), values, strict=True))
    return {"icao24": icao24, "timestamp": ms, **channels, "onground": onground}


def test_adsb_fleet_keeps_complete_state_vectors_by_time_then_aircraft() -> None:
    """ADS-B records become one row per aircraft and second, without incomplete records."""
    records = [
        state("3944e1", 1633608774000, 13650.0, 325.0, -896.0, 311.1362180242),
        state("0101de", 1633608773000, 2050.0, 155.0, None, 248.06),
        state("3944e1", 1633608773000, 13675.0, 324.0, -832.0, 311.11),
        state("0101de", 1633608773000, 0.0, 12.0, 0.0, 90.0, onground=True),
    ]
    assert csv_lines(convert.adsb_fleet(gzip.compress(json.dumps(records).encode()))) == [
        "vehicle_id,timestamp,altitude_ft,groundspeed_kt,vertical_rate_fpm,track_deg,onground",
        "aircraft-0101de,2021-10-07T12:12:53Z,0,12,0,90,1",
        "aircraft-3944e1,2021-10-07T12:12:53Z,13675,324,-832,311.11,0",
        "aircraft-3944e1,2021-10-07T12:12:54Z,13650,325,-896,311.1362180242,0",
    ]


def test_a320_fdr_reads_the_column_oriented_recorder_file_in_row_order() -> None:
    """The recorder's {column: {row: value}} file becomes rows in numeric row order."""
    rows = {  # source column: (row "9", row "10"); as text, "10" sorts before "9"
        "timestamp": (1311427389000, 1311427390000),
        "altitude": (232.0, 264.0),
        "groundspeed": (169, 169),
        "CAS": (164.875, 165.0),
        "track": (-108.28125, -108.1),
        "pitch": (27.421875, 28.8),
        "roll": (0.703125, 0.35),
        "yaw": (0.375, 0.0),
        "drift": (3.515625, 2.28),
        "vertical_acceleration": (1.1953125, 1.12),
        "weight": (69454.0647216797, 69454.0),
        "fuelflow": (7625.7924719238, 7642.12),
    }
    source = {name: {"10": later, "9": earlier} for name, (earlier, later) in rows.items()}
    assert csv_lines(convert.a320_fdr(gzip.compress(json.dumps(source).encode()))) == [
        "vehicle_id,timestamp,altitude_ft,groundspeed_kt,cas_kt,track_deg,pitch_deg,roll_deg,yaw_deg,drift_deg,vertical_accel_g,weight_kg,fuelflow_kg_h",
        "a320-fdr-1,2011-07-23T13:23:09Z,232,169,164.875,-108.28125,27.421875,0.703125,0.375,3.515625,1.1953125,69454.0647216797,7625.7924719238",
        "a320-fdr-1,2011-07-23T13:23:10Z,264,169,165,-108.1,28.8,0.35,0,2.28,1.12,69454,7642.12",
    ]


def test_wsn_motes_times_readings_every_5_seconds_and_keeps_the_labels() -> None:
    """Mote readings get 5 s steps from 9 May 2010, a mote-N-place id and the source's label."""
    source = (
        b"reading,mote_id,indoor,humidity,temperature,label\n"
        b"1,1,1,45.93,27.97,0\n"
        b"2,1,1,45.9,27.95,0\n"
        b"1,4,0,91.6,56.6,1\n"
    )
    assert csv_lines(convert.wsn_motes(source)) == [
        "vehicle_id,timestamp,humidity_pct,temperature_c,label",
        "mote-1-indoor,2010-05-09T00:00:00Z,45.93,27.97,0",
        "mote-4-outdoor,2010-05-09T00:00:00Z,91.6,56.6,1",
        "mote-1-indoor,2010-05-09T00:00:05Z,45.9,27.95,0",
    ]


def test_daphnet_gait_keeps_the_session_offsets_from_a_fixed_start() -> None:
    """Accelerometer rows keep their offsets from the session start, anchored at 2021-01-01."""
    source = (
        b"timestamp,ankle_horiz_fwd,ankle_vert,ankle_horiz_lateral,leg_horiz_fwd,leg_vert,"
        b"leg_horiz_lateral,trunk_horiz_fwd,trunk_vert,trunk_horiz_lateral,is_anomaly\n"
        b"1970-01-01 00:04:40.000,101,1000,297,-9,953,303,330,942,-145,0\n"
        b"1970-01-01 00:04:40.015,101,1000,287,-27,944,292,310,933,-155,1\n"
    )
    assert csv_lines(convert.daphnet_gait(source)) == [
        "vehicle_id,timestamp,ankle_horiz_fwd_mg,ankle_vert_mg,ankle_horiz_lateral_mg,leg_horiz_fwd_mg,leg_vert_mg,leg_horiz_lateral_mg,trunk_horiz_fwd_mg,trunk_vert_mg,trunk_horiz_lateral_mg,label",
        "daphnet-S06R02,2021-01-01T00:04:40Z,101,1000,297,-9,953,303,330,942,-145,0",
        "daphnet-S06R02,2021-01-01T00:04:40.015Z,101,1000,287,-27,944,292,310,933,-155,1",
    ]


def npy_uint16(values: list[int]) -> bytes:
    """A version 1.0 .npy file holding a 1-D uint16 array, as numpy.save writes it."""
    header = f"{{'descr': '<u2', 'fortran_order': False, 'shape': ({len(values)},), }}"
    text = header.encode("latin1").ljust(117) + b"\n"
    body = struct.pack(f"<{len(values)}H", *values)
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + body


def test_ecg_reads_the_npy_inside_the_zip_at_360_hz() -> None:
    """SciPy's ecg.dat (a zip holding ecg.npy) becomes ADC counts at 1/360 s steps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ecg.npy", npy_uint16([975, 981, 1024]))
    assert csv_lines(convert.ecg_mitdb208(buffer.getvalue())) == [
        "vehicle_id,timestamp,ecg_adc",
        "ecg-mitdb208,2021-01-01T00:00:00Z,975",
        "ecg-mitdb208,2021-01-01T00:00:00.002778Z,981",
        "ecg-mitdb208,2021-01-01T00:00:00.005556Z,1024",
    ]


def test_city_temps_converts_pacific_local_time_to_utc_across_the_autumn_change() -> None:
    """Naive Pacific times become UTC; a repeated autumn hour is the second, standard-time one."""
    seattle = (
        b"date,temp\n2010/11/07 00:00,48.1\n2010/11/07 01:00,47.9\n2010/11/07 01:00,47.5\n"
        b"2010/11/07 02:00,47.0\n"
    )
    san_francisco = b"temp,date\n61.2,2010/07/01 12:00:00\n"
    assert csv_lines(convert.city_temps(seattle, san_francisco)) == [
        "vehicle_id,timestamp,temp_f",
        "san-francisco,2010-07-01T19:00:00Z,61.2",
        "seattle,2010-11-07T07:00:00Z,48.1",
        "seattle,2010-11-07T08:00:00Z,47.9",
        "seattle,2010-11-07T09:00:00Z,47.5",
        "seattle,2010-11-07T10:00:00Z,47.0",
    ]


def test_pv_serf_east_power_converts_the_offset_times_to_utc() -> None:
    """AC power rows with -07:00 times come out in UTC, the values as written."""
    source = (
        b"measured_on,ac_power\n2016-07-01 00:00:00-07:00,-2.8601\n2016-07-01 12:15:00-07:00,5426\n"
    )
    assert csv_lines(convert.pv_serf_east_power(source)) == [
        "vehicle_id,timestamp,ac_power",
        "pv-serf-east,2016-07-01T07:00:00Z,-2.8601",
        "pv-serf-east,2016-07-01T19:15:00Z,5426",
    ]


def test_pv_serf_west_drops_the_dead_and_copied_columns_and_reads_times_as_mst() -> None:
    """13 of the 15 channels are kept, 'inveter' is spelled right, naive times are UTC-7."""
    source = (
        b",ac_current__779,ac_power__773,ac_volts__778,ambient_temp__780,das_temperature__785,"
        b"dc_neg_current__777,dc_neg_voltage__776,dc_pos_current__775,dc_pos_voltage__774,"
        b"dc_power__772,inveter_temp__784,module_temp_1__781,module_temp_2__782,"
        b"module_temp_3__783,poa_irradiance__771\n"
        b"2022-01-02 00:01:00,0.0,-9.05,118.3,-5.7296,-9.05,0.0,0.05224,0.00014,-0.00217,0.0,"
        b"6.0815,-6.4187,-6.4798,-6.8845,-1.9775\n"
    )
    assert csv_lines(convert.pv_serf_west_inverter(source)) == [
        "vehicle_id,timestamp,ac_power,ac_volts,ambient_temp,dc_neg_current,dc_neg_voltage,dc_pos_current,dc_pos_voltage,dc_power,inverter_temp,module_temp_1,module_temp_2,module_temp_3,poa_irradiance",
        "pv-serf-west,2022-01-02T07:01:00Z,-9.05,118.3,-5.7296,0.0,0.05224,0.00014,-0.00217,0.0,6.0815,-6.4187,-6.4798,-6.8845,-1.9775",
    ]


def test_water_flow_converts_the_offset_times_to_utc() -> None:
    """Hourly flow rows with +01:00 and +02:00 times come out in UTC."""
    source = (
        b"Time,Water flow [l/s]\n2022-03-20T11:00:00+01:00,100.59\n2022-03-27T12:00:00+02:00,24.3\n"
    )
    assert csv_lines(convert.water_flow(source)) == [
        "vehicle_id,timestamp,water_flow_lps",
        "water-pipe-1,2022-03-20T10:00:00Z,100.59",
        "water-pipe-1,2022-03-27T10:00:00Z,24.3",
    ]


def test_every_source_has_a_converter_taking_its_files() -> None:
    """Each dataset in the sources table has a converter with one parameter per data file."""
    assert list(convert.CONVERTERS) == list(SOURCES)
    for name, source in SOURCES.items():
        parameters = inspect.signature(convert.CONVERTERS[name]).parameters
        assert len(parameters) == len(source.files), name


def test_the_csv_written_is_what_the_cli_reads_back(tmp_path: Path) -> None:
    """The labelled CSV file loads with cli.readers.read_records: ids, times, features, labels."""
    table = convert.wsn_motes(
        b"reading,mote_id,indoor,humidity,temperature,label\n"
        b"2,1,1,45.9,27.95,0\n1,3,0,40.1,20.5,1\n1,1,1,45.93,27.97,0\n"
    )
    path = tmp_path / "wsn_motes.csv"
    csvout.write_csv(path, table)
    header = path.read_text().splitlines()[0]
    assert header == "vehicle_id,timestamp,humidity_pct,temperature_c,label"
    records = read_records(path, features=["humidity_pct", "temperature_c"])
    assert [(r.record["vehicle_id"], r.record["timestamp"]) for r in records] == [
        ("mote-1-indoor", "2010-05-09T00:00:00Z"),
        ("mote-3-outdoor", "2010-05-09T00:00:00Z"),
        ("mote-1-indoor", "2010-05-09T00:00:05Z"),
    ]
    assert [r.record["feature_vector"] for r in records] == [
        [45.93, 27.97],
        [40.1, 20.5],
        [45.9, 27.95],
    ]
    assert [r.label for r in records] == [0, 1, 0]


def test_a_naive_time_is_refused_rather_than_guessed() -> None:
    """Writing a row whose time has no UTC offset is an error, not local time."""
    with pytest.raises(ValueError, match="naive"):
        csvout.rfc3339(dt.datetime(2022, 1, 1))


def cached_wheel(cache: Path, member: str, data: bytes) -> Archive:
    """An archive already in the cache, so that nothing is downloaded."""
    archive = Archive("pypi", "fake==1.0", "fake-1.0-py3-none-any.whl")
    (cache / "archives").mkdir(parents=True)
    with zipfile.ZipFile(cache / "archives" / archive.filename, "w") as wheel:
        wheel.writestr(member, data)
    return archive


def test_a_data_file_with_the_pinned_sha256_is_loaded(tmp_path: Path) -> None:
    """A cached archive's data file whose SHA-256 matches the pin is returned as it is."""
    data = b"reading,mote_id\n1,1\n"
    archive = cached_wheel(tmp_path, "fake/data.csv", data)
    pinned = Source(archive, (DataFile("fake/data.csv", hashlib.sha256(data).hexdigest()),))
    assert download.load(pinned, tmp_path) == [data]


def test_a_sha256_mismatch_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    """A data file that differs from the pin stops the run, naming the file and both hashes."""
    archive = cached_wheel(tmp_path, "fake/data.csv", b"changed upstream\n")
    pinned = Source(archive, (DataFile("fake/data.csv", "0" * 64),))
    with pytest.raises(ChecksumError) as caught:
        download.load(pinned, tmp_path)
    message = str(caught.value)
    assert "fake-1.0-py3-none-any.whl: fake/data.csv" in message
    assert hashlib.sha256(b"changed upstream\n").hexdigest() in message and "0" * 64 in message


def test_only_with_an_unknown_name_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--only with a name that is not a dataset stops before any download, listing the names."""
    with pytest.raises(SystemExit) as caught:
        command.main([str(tmp_path / "cache"), "--only", "wsn_motes,obd_logs"])
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert "fetch-real-data: error: unknown dataset(s) in --only: obd_logs" in error
    assert "wsn_motes" in error.split("known:")[1]
    assert not (tmp_path / "cache").exists()
