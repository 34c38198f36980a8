"""Dispatch: choosing a task's performer and signing its assignment."""
