"""Detection: the detector contract, physics rules, baselines, post-rules and the engine.

Import what you need from the submodules (``wattwatch.detect.engine.detect``,
``wattwatch.detect.registry.build``); nothing heavy is imported here.
"""
