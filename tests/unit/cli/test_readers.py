"""Reading training and evaluation files: CSV, JSON lines, JSON, Parquet (cli/readers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.errors import CliError, UsageError
from cli.readers import read_records

ROW = {"vehicle_id": "VH-1", "timestamp": "2024-01-15T10:00:00Z"}


def test_csv_with_numbered_feature_columns(tmp_path: Path) -> None:
    """f0..fN columns are read in numeric order (f10 after f2), the rest ignored."""
    path = tmp_path / "t.csv"
    header = "vehicle_id,timestamp,f10,f2,f0,f1,f3,f4,f5,f6,f7,f8,f9,note"
    values = "VH-1,2024-01-15T10:00:00Z,10,2,0,1,3,4,5,6,7,8,9,x"
    path.write_text(f"{header}\n{values}\n{values}\n")
    records = read_records(path)
    assert len(records) == 2
    assert records[0].record == {**ROW, "feature_vector": [float(i) for i in range(11)]}
    assert records[0].label is None


def test_csv_with_a_feature_vector_column_and_labels(tmp_path: Path) -> None:
    """A feature_vector column holds a JSON list; label and injected columns are kept."""
    path = tmp_path / "t.csv"
    path.write_text(
        "vehicle_id,timestamp,feature_vector,label,injected\n"
        'VH-1,2024-01-15T10:00:00Z,"[0.5, 1.5]",1,spike:rpm\n'
        'VH-2,2024-01-15T10:00:01Z,"[0.1, 0.2]",0,\n'
    )
    first, second = read_records(path)
    assert first.record["feature_vector"] == [0.5, 1.5]
    assert (first.label, first.fault) == (1, "spike:rpm")
    assert (second.label, second.fault) == (0, None)


def test_named_feature_columns(tmp_path: Path) -> None:
    """--features picks named columns in the order given."""
    path = tmp_path / "t.csv"
    path.write_text("vehicle_id,timestamp,speed,rpm\nVH-1,2024-01-15T10:00:00Z,80,2400\n")
    (record,) = read_records(path, features=["rpm", "speed"])
    assert record.record["feature_vector"] == [2400.0, 80.0]


def test_json_lines_and_json(tmp_path: Path) -> None:
    """JSON lines (blank lines skipped) and a JSON document of records read the same."""
    rows = [
        {**ROW, "feature_vector": [1, 2], "label": True},
        {**ROW, "feature_vector": [3, 4], "label": 0},
    ]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    doc = tmp_path / "t.json"
    doc.write_text(json.dumps({"records": rows}))
    for path in (jsonl, doc):
        records = read_records(path)
        assert [r.record["feature_vector"] for r in records] == [[1.0, 2.0], [3.0, 4.0]]
        assert [r.label for r in records] == [1, 0]


def test_parquet(tmp_path: Path) -> None:
    """A Parquet file with a list column is read like the others (needs the parquet extra)."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table(
            {
                "vehicle_id": ["VH-1", "VH-2"],
                "timestamp": ["2024-01-15T10:00:00Z", "2024-01-15T10:00:01Z"],
                "feature_vector": [[1.0, 2.0], [3.0, 4.0]],
            }
        ),
        path,
    )
    records = read_records(path)
    assert [r.record["vehicle_id"] for r in records] == ["VH-1", "VH-2"]
    assert records[1].record["feature_vector"] == [3.0, 4.0]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "a.csv",
            "vehicle_id,timestamp,f0\nVH-1,2024-01-15T10:00:00Z,abc\n",
            "line 2: f0 is 'abc', not a number",
        ),
        (
            "a.csv",
            "vehicle_id,timestamp,f0\nVH-1,2024-01-15T10:00:00Z,nan\n",
            "only finite numbers",
        ),
        ("a.csv", "vehicle_id,timestamp,x\nVH-1,2024-01-15T10:00:00Z,1\n", "no features"),
        ("a.csv", "vehicle_id,timestamp,f0\n", "no records"),
        (
            "a.jsonl",
            '{"vehicle_id": "V", "timestamp": "t", "feature_vector": [1]}\n{"vehicle_id": "V", "timestamp": "t", "feature_vector": [1, 2]}\n',
            "record 2 has 2 features; the first has 1",
        ),
        ("a.jsonl", "{not json\n", "line 1: not JSON"),
        ("a.jsonl", '{"timestamp": "t", "feature_vector": [1]}\n', "vehicle_id is missing"),
        (
            "a.jsonl",
            '{"vehicle_id": "V", "timestamp": "t", "feature_vector": [1], "label": "maybe"}\n',
            "label is 'maybe'",
        ),
    ],
)
def test_bad_files_are_refused_in_one_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    """Each problem is a CliError naming the file, the place and the fault."""
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CliError) as caught:
        read_records(path)
    assert message in caught.value.message
    assert "\n" not in caught.value.message


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    """A missing file and an unrecognised extension are clear errors."""
    with pytest.raises(CliError, match="file not found"):
        read_records(tmp_path / "nope.csv")
    odd = tmp_path / "data.bin"
    odd.write_text("x")
    with pytest.raises(UsageError, match="--format"):
        read_records(odd)


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("2024-01-15T10:00:00Z", "2024-01-15T10:00:00Z"),  # RFC 3339: as it is
        ("2024-01-15T12:00:00+02:00", "2024-01-15T12:00:00+02:00"),
        ("2024-01-15 10:00:00", "2024-01-15T10:00:00.000Z"),  # no zone: UTC
        ("2024-01-15T10:00:00.25", "2024-01-15T10:00:00.250Z"),
        ("1705312800", "2024-01-15T10:00:00.000Z"),  # a number: seconds since the epoch
        ("0.015625", "1970-01-01T00:00:00.015Z"),  # seconds from a recording's start
        ("soon", "soon"),  # left for the caller to refuse
    ],
)
def test_timestamps_without_a_zone_are_utc_and_numbers_are_epoch_seconds(
    tmp_path: Path, given: str, read: str
) -> None:
    """A CSV's time column as users' recordings hold it, and a JSON number."""
    path = tmp_path / "t.csv"
    path.write_text(f"vehicle_id,timestamp,f0\nVH-1,{given},1\n")
    assert read_records(path)[0].record["timestamp"] == read
    lines = tmp_path / "t.jsonl"
    lines.write_text('{"vehicle_id": "V", "timestamp": 1705312800.5, "feature_vector": [1]}\n')
    assert read_records(lines)[0].record["timestamp"] == "2024-01-15T10:00:00.500Z"
