"""The `triggerx-node` commands that act through a gateway: jobs, balance, operator."""
