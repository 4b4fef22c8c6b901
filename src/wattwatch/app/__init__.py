"""User surfaces: the command line (and later the dashboard)."""
