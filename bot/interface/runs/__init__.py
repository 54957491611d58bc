"""The runs desk: plan, approve, reject, start, cancel, abort, status and App Home."""
