"""Labelled synthetic fleets: the demo data and the test bed for every detector."""

from wattwatch.sim.fleet import FAULT_CODES, NORMAL_EVENTS, SimConfig, simulate

__all__ = ["FAULT_CODES", "NORMAL_EVENTS", "SimConfig", "simulate"]
