"""Executors run one step's command somewhere (the host, a container) and report how it went."""
