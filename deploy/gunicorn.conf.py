"""gunicorn settings for the safety-dash web workers: ``gunicorn -c deploy/gunicorn.conf.py app:server``.

Run from the repository's folder (``app.py`` is the WSGI entry point). Flags on the command line win over this file
(``--bind 0.0.0.0:8050``, ``--workers 2``); ``WEB_CONCURRENCY`` sets the number of workers too.

- **Workers are processes.** They share each cut's read model through the page cache (memory-mapped files), and
  each holds what its pages compute on top (400-700 MB with a 1,000,000-AE cut; see the README's Benchmarks): size
  ``workers`` to memory first, then to cores. Threads serve the requests of one worker at once and share its cuts;
  most of a request's time is pandas, which holds the GIL, so a few are enough.
- **Two malloc arenas per worker** (``post_fork``): glibc gives each busy thread an arena of its own, up to eight
  per core, and memory freed in one is not handed back while others hold pages; with two, a worker's resident
  memory after every page fell from 769-865 MB to 601-711 MB (peak 862-977 to 761-767; the 1,000,000-AE cut,
  2026-12-01). ``MALLOC_ARENA_MAX=2`` in the environment does the same for any process.
- **No preload.** Each worker imports the app itself, opens its own database pool and starts its own warm-up
  thread (reading the newest cuts); with ``preload_app`` the master's connections and thread would be shared by
  the forked workers.
- **Long timeouts.** The first request for a new cut waits while the worker reads it (seconds to tens of seconds
  for a million records); ``timeout`` must not kill the worker meanwhile.
- **The scheduler is not started here**: it is its own process (``python -m safety_dash scheduler``).
"""

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
MALLOC_ARENAS = 2

bind = "127.0.0.1:8050"  # behind the reverse proxy that terminates HTTPS, on the same host
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "gthread"
threads = 4
preload_app = False
timeout = 120  # seconds a worker may stay silent (reading a new cut) before the master restarts it
graceful_timeout = 60  # on stop or reload, requests in flight get this long to finish
keepalive = 5
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # heartbeat files off a slow disk
limit_request_line = 8190  # a view's address (its filters) fits in the request line
accesslog = "-"  # to standard output: journald (systemd) or the container's log
errorlog = "-"
# The path without its query (a view's address names subjects and terms), no cookies, no referrer.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'

capture_output = True
proc_name = "safety-dash-web"
control_socket_disable = True  # no gunicornc socket in the home folder; systemd stops and reloads with signals


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas of this process at ``arenas``; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to cap
        return False
    return mallopt(M_ARENA_MAX, arenas) == 1


def post_fork(server, worker):
    """In each new worker, before its threads start: two malloc arenas (see the module's docstring)."""
    limit_malloc_arenas()
