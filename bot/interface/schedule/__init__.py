"""The schedule-and-freezes desk: edits and postponements, starting inside a freeze, `/chaos freeze`, the
scheduler's notices and automatic starts."""
