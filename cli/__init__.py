"""The vehicle-anomaly command-line tool."""
