"""Action items raised after a run: who does what by when, tracked to done and filed in the team's backlog."""
