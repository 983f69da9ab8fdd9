"""What every stage shares and nothing of the harness above it: the device runtime, the
process group, the results-folder lock, atomic file writes and the user-facing errors."""
