"""The learning desk, after the run: retrospectives, action items and summaries."""
