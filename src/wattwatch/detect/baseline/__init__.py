"""Per-meter baselines of normal behaviour and deviation from them."""
