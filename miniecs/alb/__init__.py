"""The Application Load Balancer: control plane (ELBv2 state, ECS integration) and data plane."""
