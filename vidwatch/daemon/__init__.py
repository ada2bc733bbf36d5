"""The service: intake sources, the runner and its leases, retention, sd_notify, start/stop."""
