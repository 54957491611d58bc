"""Dashboards marked with the fault window of each run (Grafana annotations)."""
