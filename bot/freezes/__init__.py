"""Delivery freezes: added by approvers or read from calendar feeds; a start inside one is refused."""
