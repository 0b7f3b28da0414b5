"""Plumbing every stage runs on: Redis connections, consumer groups, heartbeats, metrics, dead letters, logs."""
