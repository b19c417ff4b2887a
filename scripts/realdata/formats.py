"""Reading the sources' file formats: CSV text, JSON numbers and NumPy ``.npy`` arrays."""

from __future__ import annotations

import ast
import csv
import io
import math
import struct

_MISSING = {"", "nan", "na", "null"}
_NPY_CODES = {"<u2": "H", "<i2": "h", "<u4": "I", "<i4": "i", "<u8": "Q", "<i8": "q"}


def csv_rows(data: bytes) -> list[dict[str, str]]:
    """The rows of a UTF-8 CSV file with a header line."""
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def number(cell: str) -> str:
    """A numeric cell as its own text (no float round trip); '' when missing."""
    text = cell.strip()
    if text.lower() in _MISSING:
        return ""
    float(text)  # a ValueError here names the cell that is not a number
    return text


def json_number(value: object) -> str:
    """A JSON number as CSV text: integral values without '.0'; '' for null or not finite."""
    if value is None:
        return ""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    x = float(value)
    if not math.isfinite(x):
        return ""
    return str(int(x)) if x.is_integer() else repr(x)


def npy_integers(data: bytes) -> list[int]:
    """A 1-D little-endian integer array from a ``.npy`` file (without numpy)."""
    if data[:6] != b"\x93NUMPY":
        raise ValueError("not a .npy file")
    if data[6] == 1:
        (size,) = struct.unpack("<H", data[8:10])
        start = 10
    else:
        (size,) = struct.unpack("<I", data[8:12])
        start = 12
    header = ast.literal_eval(data[start : start + size].decode("latin1"))
    if not isinstance(header, dict) or header.get("fortran_order"):
        raise ValueError(f"unexpected .npy header: {header!r}")
    code = _NPY_CODES.get(str(header.get("descr")))
    shape = header.get("shape")
    if code is None or not isinstance(shape, tuple) or len(shape) != 1:
        raise ValueError(f"not a 1-D little-endian integer array: {header!r}")
    (count,) = shape
    body = data[start + size :]
    return list(struct.unpack(f"<{count}{code}", body[: count * struct.calcsize(code)]))
