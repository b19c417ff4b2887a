"""A synthetic vehicle fleet: realistic telemetry with labelled, injected sensor faults.

Pure computation (no I/O, no clock): the caller gives the start time and the seed, so a run
is reproducible, and the command-line tool, the tests and the benchmarks share one model.

Each vehicle has its own baselines (cruise speed, gearing, engine temperature offset, oil
pressure offset, battery, fuel efficiency, vibration). Its eight sensors are driven by one
latent state, speed and engine load, so they are correlated the way real ones are: rpm and
fuel rate follow speed and load, engine and coolant temperature follow load through a thermal
lag, oil pressure follows rpm and falls as the oil warms, the battery sags under load,
vibration grows with rpm and speed. A daily pattern shapes the traffic (slower at the 8:30
and 17:30 rush hours, faster at night) and the ambient temperature (15 ± 6 °C, warmest at
15:00), which warms the engine and nudges the battery voltage.

Faults are *sensor* faults: they change what one sensor reports, never the vehicle's true
state. Five kinds, each accounting for about a fifth of the faulty records:

``spike``    one record with one sensor far off (5 to 9 typical fleet deviations);
``drift``    one sensor's reading drifts away linearly, to 5-9 deviations, over 6 to 20 records;
``stuck``    one sensor repeats its last reading for 6 to 20 records;
``dropout``  one sensor reads exactly 0 (a dead sensor) for 6 to 20 records;
``noise``    one sensor's reading gets Gaussian noise of 2-4 deviations (a loose connector)
             for 6 to 20 records.

Every record that a fault touched carries it (``SimRecord.fault``, e.g. ``"drift:oil_pressure"``)
and only those: ``label`` is 1 exactly for them. The physics and the faults draw from separate
random streams, so a seed with ``anomaly_rate=0`` gives the same readings as with faults,
except on the faulted records.

    sim = FleetSimulator(SimulationConfig(vehicles=20, anomaly_rate=0.02, seed=7, start=now))
    for record in sim.take(1000): ...
    history = training_history(vehicles=20, count=5000, seed=7, end=now)   # fault-free bursts
"""

from simulator.faults import (
    ALL_KINDS,
    EPISODE_LENGTH,
    FaultKind,
    episode_start_probability,
    kind_weights,
)
from simulator.fleet import HISTORY_RUN, FleetSimulator, SimulationConfig, training_history
from simulator.records import INJECTED_HEADER, LABEL_HEADER, SimRecord, feature_matrix
from simulator.sensors import FEATURES, N_FEATURES, SCALES, UNITS

__all__ = [
    "ALL_KINDS",
    "EPISODE_LENGTH",
    "FEATURES",
    "HISTORY_RUN",
    "INJECTED_HEADER",
    "LABEL_HEADER",
    "N_FEATURES",
    "SCALES",
    "UNITS",
    "FaultKind",
    "FleetSimulator",
    "SimRecord",
    "SimulationConfig",
    "episode_start_probability",
    "feature_matrix",
    "kind_weights",
    "training_history",
]
