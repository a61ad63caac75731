"""The live web console at `/` of the AWS endpoint: clusters → services → tasks, the load
balancers and scaling, streamed over server-sent events, with a few actions a demo needs.

`model` builds the view from the same AWS operations the API serves (`calls`), `history` keeps
the last minutes of per-task CPU and counts, `web` is the routes (page, static files, stream,
actions behind a per-server token), `static/` the hand-written page, script and style sheet.
"""

from miniecs.console.model import Console, TaskLogs

__all__ = ["Console", "TaskLogs"]
