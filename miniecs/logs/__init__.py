"""CloudWatch Logs: the store of groups, streams and events, and the awslogs driver."""
