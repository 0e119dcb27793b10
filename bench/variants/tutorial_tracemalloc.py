"""Experiments: the tutorial baseline's ASGI application with tracemalloc (see
asgi_tracemalloc.py); run with PYTHONPATH=<repo>:bench/tutorial."""

# isort: skip_file
import tracemalloc

tracemalloc.start(12)

from mysite.asgi import application  # noqa: E402

from bench.variants import asgi_tracemalloc  # noqa: E402, F401  (installs the USR1 handler)

__all__ = ["application"]
