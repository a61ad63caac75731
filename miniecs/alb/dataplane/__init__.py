"""The ALB data plane: a standalone program (stdlib, uvloop, httptools) that runs in the load
balancer's container. It never imports the rest of miniecs; use relative imports only."""
