"""The ALB data plane: one process per load balancer, serving its listeners.

A program of its own (stdlib + uvloop + httptools, relative imports only) that is copied into
the image ``miniecs/alb:latest`` as the package ``albdp``. The contract with the control plane
is ``docs/alb-dataplane.md``: :mod:`.config` polls ``config.json``, :mod:`.routing` and
:mod:`.balancing` decide where a request goes, :mod:`.health` checks targets, :mod:`.proxy` and
:mod:`.upstream` move the bytes, :mod:`.state` writes ``state.json`` and :mod:`.main` ties them.
"""
