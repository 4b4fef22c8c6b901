"""Prosumer grid monitoring (SPEC §5): agreed operating points from the OPF, neighbours probing
each other from tie-line meters, energy mismatch, anomaly factor, penalty, isolation and
re-dispatch. Imports nothing heavy at package import (pandapower, matplotlib, paho-mqtt load in
the modules that need them)."""
