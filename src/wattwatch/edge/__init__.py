"""The meter's edge (issue 17): waveform metrology, the tamper state machine, signed exception
reports over MQTT, and a waveform simulator.

- :mod:`wattwatch.edge.metrology`: samples → per-cycle RMS, ΔI, THD, harmonics, frequency;
- :mod:`wattwatch.edge.tamper`: the state machine (the batch neutral rule's decision per cycle);
- :mod:`wattwatch.edge.signing`, :mod:`wattwatch.edge.publish`: signed reports, the tamper log;
- :mod:`wattwatch.edge.run`: ``wattwatch edge --config meter.toml``;
- :mod:`wattwatch.edge.simulate`: ``wattwatch simulate --waveform``;
- the head-end is the ``tamper`` source kind (:mod:`wattwatch.sources.tamper`).
"""
