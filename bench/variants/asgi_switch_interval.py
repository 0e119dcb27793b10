"""Experiments: the project's ASGI application with a shorter GIL switch interval.

While the event loop fans a message out it holds the GIL; the database thread of
`database_sync_to_async` then waits up to the switch interval (5 ms) each time it takes
the GIL back after a call into SQLite or psycopg. This lowers that wait to 0.5 ms.
`--systems project-exp --exp-asgi bench.variants.asgi_switch_interval:application`.
"""

import sys

from project.asgi import application

sys.setswitchinterval(0.0005)

__all__ = ["application"]
