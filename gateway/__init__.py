"""The gateway: the HTTP API for dApp developers, and the services that turn jobs into tasks."""
