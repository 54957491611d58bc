"""A run's records: its faults, its probe measurements and its outcome.

Below both the engine (which writes them) and learning and safety (retrospectives, reports, alarms: which
read them), so no reader reaches up into the engine. ``models`` holds the tables, ``service`` the queries.
"""
