"""miniecs: a local emulator of Amazon ECS on Fargate, built on a real Docker engine."""

__version__ = "0.1.0"
