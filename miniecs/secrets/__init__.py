"""Secrets Manager secrets and SSM parameters, and their resolution into task environments."""
