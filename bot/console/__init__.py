"""The terminal front end: ``chaosbot shell`` runs the Slack flows with text rendering."""
