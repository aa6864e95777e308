"""Production gunicorn configuration of the inference service.

Settings from the environment (defaults fit the cores present):

    SLIPWAY_BIND             host:port; default 127.0.0.1:8080, or $SLIPWAY_HOST:$PORT
    SLIPWAY_HOST             set by the image (0.0.0.0): then bind $SLIPWAY_HOST:$PORT,
                             PORT defaulting to 8080; outside the image PORT is not read
    SLIPWAY_WORKERS          worker processes; default one per core
    SLIPWAY_THREADS          request threads per worker (gthread); default 4
    SLIPWAY_TORCH_THREADS    torch intra-op threads per worker; default 1
    SLIPWAY_TIMEOUT          seconds before a silent worker is killed; default 30
    SLIPWAY_GRACEFUL_TIMEOUT seconds a worker may take to finish on SIGTERM; default 10
    SLIPWAY_MAX_REQUESTS     requests before a worker is recycled (0: never); default 50000
    PROMETHEUS_MULTIPROC_DIR where workers write metrics; default a fresh temp dir

Forking and torch: torch's intra-op thread pool does not survive fork(), and a worker
forked from a master that used it can hang (benoitc/gunicorn#2478, pytorch/pytorch#49555).
So the master never imports torch: no `preload_app`, the master imports no Slipway code
(`post_fork` imports `service.metrics`, which holds no torch, in the new worker), and
each worker imports torch and loads the model itself, after the fork.
"""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import socket
import sys
import tempfile
from functools import partial
from typing import Any

from gunicorn.sock import TCPSocket, create_sockets
from gunicorn.workers.gthread import ThreadWorker

_env = os.environ


def _int(name: str, default: int) -> int:
    return int(_env.get(name) or default)


_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class KeepAliveSafeThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, with a listening socket of its own, minus a race that
    fails requests when it stops.

    Even load: workers that share one listening socket do not share its connections
    evenly. Whichever worker wakes first accepts, and with long-lived keep-alive
    connections (load balancers, wrk) one worker can end up with nearly all of them
    while the other idles. So each worker slot has a listening socket of its own,
    bound to the same address with SO_REUSEPORT beside the master's, and the kernel
    spreads new connections over the sockets by a hash of their addresses. The
    master makes all of them (`on_starting`) and keeps them open; a worker accepts
    from its slot's socket and from the master's. When a worker stops (recycled,
    crashed), its slot's socket stays open in the master and holds the connections
    that arrive until the next worker of that slot takes it over: none is refused
    or reset. (A socket of the worker's own, closed when it stops, resets what
    waits in it; gunicorn's own `reuse_port` does that, and gives the master no
    socket, so connections are refused while every worker restarts.)

    gthread decides per request, before running it, whether to keep the connection
    alive. When one thread's request reaches max_requests (or SIGTERM arrives), the
    worker stops (`alive` false), but requests already running on its other threads
    still answer as keep-alive, and gthread then closes those connections anyway
    (`finish_request`). A client that sent its next request on such a connection gets
    no answer, and clients do not resend a POST: errors in a soak whenever a worker
    is recycled. Here such a connection goes back to the poller instead: its next
    request is answered with `Connection: close` (a stopping worker keeps nothing
    alive), and an idle one is closed after `keepalive` seconds like any idle
    keep-alive connection, all within `graceful_timeout`.
    """

    slot: int | None = None  # set by pre_fork in the master

    def run(self) -> None:
        if self.slot is not None:
            self.sockets = [*_slot_sockets[self.slot], *self.sockets]
        super().run()

    def finish_request(self, conn: Any, fs: Any) -> None:
        told_keep_alive = not fs.cancelled() and fs.exception() is None and fs.result() is True
        if self.alive or not told_keep_alive:
            super().finish_request(conn, fs)
            return
        try:
            conn.sock.setblocking(False)
            conn.set_timeout()
            self.keepalived_conns.append(conn)
            self.poller.register(
                conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn)
            )
        except Exception:  # as gthread: a socket that cannot be polled is closed
            if conn in self.keepalived_conns:
                self.keepalived_conns.remove(conn)
            self.nr_conns -= 1
            conn.close()


wsgi_app = "service.app:create_app()"
# A host's stray PORT must not open the service to every interface: PORT counts only
# where SLIPWAY_HOST is set, i.e. in the image, where platforms set PORT.
bind = _env.get("SLIPWAY_BIND") or (
    f"{_env['SLIPWAY_HOST']}:{_env.get('PORT') or 8080}"
    if _env.get("SLIPWAY_HOST")
    else "127.0.0.1:8080"
)
workers = _int("SLIPWAY_WORKERS", _cores)
threads = _int("SLIPWAY_THREADS", 4)
# gthread (keep-alive connections even with one thread), minus a race: see the class.
worker_class = KeepAliveSafeThreadWorker
# Each worker runs its own forward passes: workers x torch threads = cores, not cores^2.
torch_threads = _int("SLIPWAY_TORCH_THREADS", max(1, _cores // workers))
_env["SLIPWAY_TORCH_THREADS"] = str(torch_threads)
# Read by OpenMP when a worker first imports torch.
_env.setdefault("OMP_NUM_THREADS", str(torch_threads))

preload_app = False  # see the module docstring: never torch in the master
timeout = _int("SLIPWAY_TIMEOUT", 30)
# SIGTERM: stop accepting, finish in-flight requests (milliseconds each). gunicorn 26's
# gthread worker also waits out idle keep-alive connections up to this bound, so keep
# it short, and below Kubernetes' default 30 s termination grace period.
graceful_timeout = _int("SLIPWAY_GRACEFUL_TIMEOUT", 10)
keepalive = 5
backlog = 2048
# Recycling bounds slow leaks; the jitter keeps all workers from restarting at once.
max_requests = _int("SLIPWAY_MAX_REQUESTS", 50000)
max_requests_jitter = max(1, max_requests // 10) if max_requests else 0
# The heartbeat file is touched on every request: keep it in memory, not on disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = _env.get("SLIPWAY_ACCESS_LOG") or None  # off by default: it costs throughput
errorlog = "-"
# gunicorn's control socket is one path per user: two servers on a host would clash.
control_socket_disable = True
loglevel = _env.get("SLIPWAY_LOG_LEVEL", "info")

# Metrics: every worker writes to files in one directory; it must exist before the
# first worker imports prometheus_client, and only the master that made it removes it.
_own_metrics_dir = not _env.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    _env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="slipway-metrics-")
_metrics_dir = _env["PROMETHEUS_MULTIPROC_DIR"]


class _ReusePort:
    """The configuration as gunicorn's sockets read it, with SO_REUSEPORT on."""

    reuse_port = True

    def __init__(self, cfg: Any) -> None:
        self._cfg = cfg

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cfg, name)


def _reuses_port(listener: Any) -> bool:
    return bool(listener.sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT))


# Listening sockets of the worker slots, made by the master: see KeepAliveSafeThreadWorker.
_slot_sockets: list[list[TCPSocket]] = []


def on_starting(server: Any) -> None:
    # The master's TCP sockets, made here with SO_REUSEPORT, and one more per worker
    # slot beside each (see KeepAliveSafeThreadWorker). Not on a re-exec or under
    # systemd socket activation: then the sockets are inherited as they are.
    inherited = os.environ.get("GUNICORN_FD") or os.environ.get("LISTEN_FDS")
    if not inherited and hasattr(socket, "SO_REUSEPORT") and not server.LISTENERS:
        server.LISTENERS = create_sockets(_ReusePort(server.cfg), server.log)
    tcp = [s for s in server.LISTENERS if isinstance(s, TCPSocket) and _reuses_port(s)]
    if tcp and server.cfg.workers > 1:
        _slot_sockets[:] = [
            [type(s)(s.cfg_addr, _ReusePort(server.cfg), server.log) for s in tcp]
            for _ in range(server.cfg.workers)
        ]

    if "torch" in sys.modules:
        logging.getLogger("gunicorn.error").warning(
            "torch is imported in the gunicorn master; workers may hang after fork"
        )


def pre_fork(server: Any, worker: Any) -> None:
    # The first slot no live worker holds (none past the slots made at start).
    taken = {getattr(w, "slot", None) for w in server.WORKERS.values()}
    worker.slot = next((i for i in range(len(_slot_sockets)) if i not in taken), None)


def post_fork(server: Any, worker: Any) -> None:
    # In the new worker, before it imports torch and the app: its slipway_model_ready
    # (0) exists from here on, so the minimum over live workers is not 1 while one
    # still boots. The module imports only prometheus_client.
    from service import metrics  # noqa: F401


def child_exit(server: Any, worker: Any) -> None:
    # Drops the dead worker's live gauges (slipway_model_ready); its counters stay summed.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def on_exit(server: Any) -> None:
    for listener in (s for slot in _slot_sockets for s in slot):
        listener.close()
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
