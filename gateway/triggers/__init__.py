"""What fires jobs: the time scheduler (interval jobs)."""
