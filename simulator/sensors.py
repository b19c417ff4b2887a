"""The simulated sensors: their names, units, typical deviations and which cannot go negative."""

from __future__ import annotations

#: The sensors, in ``feature_vector`` order.
FEATURES: tuple[str, ...] = (
    "speed",  # km/h
    "rpm",  # 1/min
    "engine_temp",  # °C
    "coolant_temp",  # °C
    "oil_pressure",  # kPa
    "battery_voltage",  # V
    "fuel_rate",  # L/h
    "vibration",  # g (RMS)
)
UNITS: dict[str, str] = {
    "speed": "km/h",
    "rpm": "1/min",
    "engine_temp": "°C",
    "coolant_temp": "°C",
    "oil_pressure": "kPa",
    "battery_voltage": "V",
    "fuel_rate": "L/h",
    "vibration": "g",
}
N_FEATURES = len(FEATURES)
# A typical deviation of each sensor across the fleet: the unit of fault magnitudes.
SCALES: tuple[float, ...] = (20.0, 500.0, 5.0, 5.0, 30.0, 0.3, 6.0, 0.05)
# Sensors that cannot read below zero.
NON_NEGATIVE: tuple[bool, ...] = (True, True, False, False, True, True, True, True)
