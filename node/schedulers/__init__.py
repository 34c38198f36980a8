"""Schedulers: they decide when a job's trigger fires (time now; events and conditions later)."""
