"""A second CPU thread for the parts of a training step that do not wait on each other.

At 2 torch threads a scANVI step is ~20 ms, and ~8 ms of it are small operations (BatchNorm,
element-wise work, autograd bookkeeping on ~600-row (cell, class) tensors) that a second OpenMP
thread does not shorten. The step has two independent halves once z is drawn: the terms that
read x (decoder, likelihood) and the terms that read z only ((cell, class) terms, q(c|z),
Algorithm 1's classification step). Run on two Python threads with one intra-op thread each, the
second half overlaps the first instead of following it (torch releases the GIL inside its ops).

Two things a naive second thread gets wrong on CPU (both measured, DEVELOPERS.md):
- ATen sets a thread's intra-op count from the process-wide value the first time the thread asks
  for it. A thread that calls ``torch.set_num_threads(1)`` before that first use is reset to the
  process value later (whatever the main thread set last) and opens its own OpenMP team. Two
  teams make libgomp throttle every spinning worker (more threads than cores), and a step took
  ~35 ms instead of ~19. So the worker asks first, then sets 1.
- The default random generator is shared: the worker's jobs draw from their own seeded
  generators (``module.random_stream``), so a seed still gives the same numbers.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional

import torch

from .module import random_stream


def _one_intra_op_thread() -> None:
    torch.get_num_threads()  # initialise this thread's count first (see the module docstring)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # per thread, as the main thread sets it for training


class SecondThread:
    """One worker thread with one intra-op thread; jobs run in the order they are submitted.

    The caller keeps ``main_threads`` intra-op threads for itself while this object is open (the
    worker takes the last core): use it as a context manager around the training steps.
    """

    def __init__(self, total_threads: int):
        if total_threads < 2:
            raise ValueError("a second training thread needs at least 2 torch threads")
        self.total_threads = int(total_threads)
        self.main_threads = self.total_threads - 1
        self._pool: Optional[ThreadPoolExecutor] = None
        self._threads_before: Optional[int] = None

    def __enter__(self) -> "SecondThread":
        self._threads_before = torch.get_num_threads()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="hb-second-thread", initializer=_one_intra_op_thread)
        self._pool.submit(lambda: None).result()  # start the worker (and its set-up) now
        torch.set_num_threads(self.main_threads)  # also restores the process-wide value the worker changed
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True)
        self._pool = None
        torch.set_num_threads(self._threads_before)

    def submit(self, fn: Callable, *args, stream: Optional[torch.Generator] = None) -> Future:
        """Run ``fn(*args)`` on the worker; its dropout masks and Gaussian draws come from
        ``stream`` (None: torch's default generator, for jobs that draw nothing)."""
        def job():
            with random_stream(stream):
                return fn(*args)
        return self._pool.submit(job)
