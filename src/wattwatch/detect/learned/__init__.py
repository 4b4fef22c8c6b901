"""Learned detectors: windowed features, library models (scikit-learn, torch), calibration,
ensemble and persistence. Nothing is imported here, so torch and scikit-learn load only when a
learned detector is built."""
