"""The team's alerting, around a run: Alertmanager silences for the alerts a run is expected to fire."""
