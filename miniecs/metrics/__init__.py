"""Metrics: sampling containers, computing what ECS publishes, storing CloudWatch series."""
