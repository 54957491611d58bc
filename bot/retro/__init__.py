"""Retrospectives: what a run showed, built from its records, rendered as blocks, Markdown and a chart."""
