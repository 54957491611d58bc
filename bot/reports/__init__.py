"""Monthly and quarterly summaries of the chaos programme, computed in SQL, rendered as Markdown, CSV or JSON."""
