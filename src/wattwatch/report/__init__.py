"""The HTML report for any run: a fleet overview and a section per alerting meter (its channels
with the alert spans shaded, each alert's evidence and recommended action), in one file that
opens offline. :func:`wattwatch.api.report` and ``wattwatch report`` are the ways in."""
