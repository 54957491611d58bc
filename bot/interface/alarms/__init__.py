"""The alarms desk: the loud revert-failure alert, its Acknowledge button and its reminders."""
