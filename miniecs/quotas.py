"""AWS quotas miniecs enforces, each with its source: the API refuses what exceeds them and the
controllers never act beyond them, whatever an older state dir holds."""

from __future__ import annotations

TASKS_PER_SERVICE = 5000
"""ECS quota "Tasks per service" (docs.aws.amazon.com/general/latest/gr/ecs-service.html): the
most tasks a service's desired count may ask for."""

TASK_LAUNCH_BURST = 100
"""Tasks a service starts in one scheduler pass: Fargate's task-launch bucket ("AWS Fargate
throttling quotas": 100 tasks at once, refilled at 20 a second), so a large desired count is
reached in bounded batches, as on ECS, never built in one go."""
