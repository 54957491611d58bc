"""Time rules for starting runs: firings claimed once across replicas, off-peak windows, the start gate."""
