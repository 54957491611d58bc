"""The demo target: a share-link portal to break for real, started and stopped by `chaosbot shell --demo-target`."""
