"""Filing action items in the team's backlog: GitHub issues, Jira issues, or a webhook."""
