"""Standalone tasks: how a task becomes containers (specs), what to do next (plan), and the
loop that does it (controller)."""
