"""Application Auto Scaling for ECS services: scalable targets, policies, alarms, decisions."""
