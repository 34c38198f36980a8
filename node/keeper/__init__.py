"""The keeper: executes the tasks assigned to it and checks the tasks its peers executed."""
