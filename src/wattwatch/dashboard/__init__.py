"""``wattwatch dashboard``: a signed-in Streamlit view of the store (fleet, meter, alerts, data,
live, grid, evaluation); writes only through :mod:`wattwatch.dashboard.actions`."""
