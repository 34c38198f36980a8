"""Keeper health: heartbeats, online/offline, uptime."""
