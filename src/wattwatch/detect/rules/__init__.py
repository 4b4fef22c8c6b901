"""Physics rules: each encodes how a fault shows in what a meter reports."""
