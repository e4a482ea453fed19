"""Data-parallel stylization over torch.distributed: N processes (ranks), one GPU each, N views per step.

Every rank holds the whole scene and the same optimiser. In a step each rank renders its own view(s) and computes
their SOS gradient; the gradients of the optimised parameters are summed over ranks by one all-reduce and divided
by the number of views of the step, so every rank takes the same Adam step and the ranks stay identical.

Views of a step (the sampling that makes N ranks equal to one process taking N views):
every rank draws the step's whole list of ``views_per_step × world_size`` view indices from the same seeded
``random.Random`` (one ``randrange(len(cameras))`` per entry), and rank r takes entries ``r·V … r·V+V−1``
(V = views_per_step). A single process with ``views_per_step = V × N`` draws the same list and takes all of it, so
both see the same views at every step and average the same gradients. With one process and V = 1 this is the
plain loop: one ``randrange`` per step, no process group, no collective.

Processes come from ``torchrun --nproc_per_node N -m core ...`` (it sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT) or from :func:`launch` (``sos-stylize --gpus N``), which starts the same command N times
with that environment on 127.0.0.1. GPUs talk through NCCL, CPU processes through gloo (tests and development only:
CPU ranks share the machine's cores, so they are not faster). One host: every rank reads the same input and
checkpoint files; only rank 0 reports progress and writes files.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from core.errors import InputError

LOCALHOST = "127.0.0.1"
TIMEOUT = timedelta(minutes=30)
"""How long a collective waits for the other ranks (the first step includes every rank's warm-up)."""
STOP_GRACE_S = 5.0
"""After one rank fails, how long the launcher lets the others end before SIGTERM, and again before SIGKILL."""
POLL_S = 0.2


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: its rank, the number of ranks, its GPU on this host, and whether a group runs."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    active: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that reports progress and writes files."""
        return self.rank == 0


SINGLE = Ranks()
_local_rank: int | None = None


def current() -> Ranks:
    """This process's ranks: :data:`SINGLE` unless a process group is initialised (then even with world size 1)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    local = _local_rank if _local_rank is not None else int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return Ranks(dist.get_rank(), dist.get_world_size(), local, True)


def backend_for(device: torch.device) -> str:
    """NCCL between CUDA devices, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def setup(rank: int, world_size: int, device: torch.device, *, local_rank: int | None = None,
          address: str = LOCALHOST, port: int | None = None) -> Ranks:
    """Join a process group of ``world_size`` ranks as ``rank`` (tests, benchmarks; the CLI uses the environment).

    Args:
        rank: this process's rank, 0 … world_size − 1.
        world_size: number of processes; 1 gives a group of one (the distributed code path on one process).
        device: the device type the ranks compute on: CUDA → NCCL and ``cuda:local_rank``, else gloo.
        local_rank: GPU index on this host (default: ``rank``).
        address, port: rendezvous at rank 0 (``port`` None: ``env://``, i.e. MASTER_ADDR and MASTER_PORT, or
            torchrun's own store).

    Returns:
        The :class:`Ranks` of this process.
    """
    global _local_rank
    _local_rank = rank if local_rank is None else local_rank
    if device.type == "cuda":
        if _local_rank >= torch.cuda.device_count():
            raise InputError(f"rank {rank}: GPU {_local_rank} asked for but only {torch.cuda.device_count()} "
                             "CUDA GPUs are visible")
        torch.cuda.set_device(_local_rank)
    init_method = "env://" if port is None else f"tcp://{address}:{port}"
    dist.init_process_group(backend_for(device), init_method=init_method, rank=rank, world_size=world_size,
                            timeout=TIMEOUT,
                            device_id=torch.device("cuda", _local_rank) if device.type == "cuda" else None)
    return current()


def teardown(wait_for_peers: bool = False) -> None:
    """Leave the process group (a no-op without one).

    ``wait_for_peers`` (the normal end of a run): a barrier first, so that all ranks leave together; rank 0 still
    writes the outputs when the others are done, and a rank tearing gloo down under its peers can abort at exit
    ("terminate called without an active exception", seen in CI). Never on an error path, where a peer may be gone.
    """
    global _local_rank
    if dist.is_available() and dist.is_initialized():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()
    _local_rank = None


def environment_world_size() -> int:
    """WORLD_SIZE set by torchrun or :func:`launch`; 1 when this process was started alone."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def environment_rank() -> int:
    """RANK set by torchrun or :func:`launch`; 0 when this process was started alone."""
    return int(os.environ.get("RANK", "0"))


@contextlib.contextmanager
def from_environment(device: torch.device) -> Iterator[Ranks]:
    """The process group torchrun's (or :func:`launch`'s) environment asks for, for the duration of a run.

    WORLD_SIZE unset or 1: nothing happens and the plain single-process path runs.
    """
    if environment_world_size() <= 1:
        yield SINGLE
        return
    ranks = setup(environment_rank(), environment_world_size(), device,
                  local_rank=int(os.environ.get("LOCAL_RANK", environment_rank())))
    try:
        yield ranks
    except BaseException:
        teardown()
        raise
    teardown(wait_for_peers=True)


def rank_device(device: torch.device) -> torch.device:
    """The device this rank computes on: ``cuda:LOCAL_RANK`` in a CUDA process group, else ``device`` unchanged."""
    ranks = current()
    if ranks.active and device.type == "cuda":
        return torch.device("cuda", ranks.local_rank)
    return device


def step_views(rng: random.Random, view_count: int, views_per_step: int) -> tuple[list[int], list[int]]:
    """The step's views: (all ranks' list, this rank's share), drawn as the module docstring says."""
    ranks = current()
    drawn = [rng.randrange(view_count) for _ in range(views_per_step * ranks.world_size)]
    return drawn, drawn[ranks.rank * views_per_step:(ranks.rank + 1) * views_per_step]


def average_gradients(params: Iterable[torch.Tensor], terms: dict[str, float], views: int) -> dict[str, float]:
    """Average the gradients and loss terms summed over this rank's ``views`` views with every rank's.

    One all-reduce of one flat buffer (all gradients, then the terms); divided by the step's number of views.
    Without a process group and with one view nothing is done (the plain path).

    Args:
        params: the optimised tensors; their ``.grad`` hold the sum of this rank's views' gradients.
        terms: loss terms summed over this rank's views.
        views: this rank's number of views in the step.

    Returns:
        The loss terms averaged over all views of the step.
    """
    ranks = current()
    params = list(params)
    total = views * ranks.world_size
    if not ranks.active:
        if total > 1:
            for p in params:
                if p.grad is not None:
                    p.grad /= total
        return {key: value / total for key, value in terms.items()}
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    values = torch.tensor(list(terms.values()), dtype=grads[0].dtype, device=grads[0].device)
    flat = torch.cat([g.reshape(-1) for g in grads] + [values])
    dist.all_reduce(flat)
    flat /= total
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset:offset + g.numel()].view_as(g)
        offset += g.numel()
    return dict(zip(terms, flat[offset:].tolist()))


def broadcast_tensors(tensors: Iterable[torch.Tensor]) -> None:
    """Copy rank 0's values of ``tensors`` into every rank's, in place (initial parameters).

    One broadcast of one flat buffer: NCCL refuses non-contiguous tensors (a parameter may be a strided view),
    and one collective is cheaper than one per tensor. The tensors must share a dtype and device.
    """
    if not current().active:
        return
    tensors = list(tensors)
    with torch.no_grad():
        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        dist.broadcast(flat, src=0)
        offset = 0
        for t in tensors:
            t.copy_(flat[offset:offset + t.numel()].view(t.shape))
            offset += t.numel()


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (cancellation: all ranks stop at the same step)."""
    if not current().active:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=_comm_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def pool_in_place(sums: Iterable[torch.Tensor], maxima: Iterable[torch.Tensor] = ()) -> None:
    """Every rank's ``sums`` added and ``maxima`` maxed over ranks, in place (per-Gaussian statistics that each rank
    gathered from its own views: densification decides from the pooled ones, so every rank splits the same)."""
    if not current().active:
        return
    for tensors, op in ((sums, dist.ReduceOp.SUM), (maxima, dist.ReduceOp.MAX)):
        for t in tensors:
            dist.all_reduce(t, op=op)


def decided_on_main(decide: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Rank 0 runs ``decide()`` (a 1-D int64 tensor, e.g. indices of Gaussians to split); every rank gets it.

    For decisions that must be the same everywhere, such as densification. Returned on this rank's device.
    """
    if not current().active:
        return decide()
    device = _comm_device()
    chosen = decide().to(device=device, dtype=torch.int64) if current().is_main else None
    length = torch.tensor([0 if chosen is None else chosen.numel()], dtype=torch.int64, device=device)
    dist.broadcast(length, src=0)
    if chosen is None:
        chosen = torch.empty(int(length.item()), dtype=torch.int64, device=device)
    dist.broadcast(chosen, src=0)
    return chosen


def main_only(callback: Callable | None) -> Callable | None:
    """``callback`` on rank 0, None elsewhere (progress and preview callbacks)."""
    return callback if current().is_main else None


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def requested_processes(gpus: str | None, device: torch.device, device_option: str) -> int:
    """How many processes ``--gpus N|all`` asks for; 1 means the plain run in this process.

    Several processes need as many CUDA GPUs, except with an explicit ``--device cpu``: then N gloo processes share
    the CPU, for tests and development only. Under torchrun (WORLD_SIZE set) ``--gpus`` is ignored.
    """
    if gpus is None or environment_world_size() > 1:
        return 1
    text = gpus.strip().lower()
    if device.type == "cuda":
        visible = torch.cuda.device_count()
        count = visible if text == "all" else _positive_int(text)
        if count > visible:
            raise InputError(f"--gpus {gpus}: only {visible} CUDA GPU{'s' if visible != 1 else ''} visible")
        return count
    count = None if text == "all" else _positive_int(text)
    if count == 1:
        return 1
    if device_option != "cpu" or count is None:
        raise InputError(f"--gpus {gpus}: no CUDA GPU is available to this PyTorch; several CPU processes "
                         "(--device cpu --gpus N) are for tests and development only")
    return count


def _positive_int(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise InputError(f"--gpus: expected a number of GPUs (1 or more) or 'all', got '{text}'")
    return count


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for rank 0's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def launch(argv: Sequence[str], count: int, device: torch.device) -> int:
    """Run ``python -m core ARGV`` as ``count`` ranks on this host, as torchrun would; wait for all of them.

    Signals (Ctrl-C, SIGTERM) are passed to the ranks, which stop together. If a rank fails, the others are stopped
    (:func:`wait_for_ranks`). Returns the first failing rank's exit code, else 0.
    """
    base = {**os.environ, "MASTER_ADDR": LOCALHOST, "MASTER_PORT": str(free_port()), "WORLD_SIZE": str(count),
            "LOCAL_WORLD_SIZE": str(count)}
    if device.type != "cuda":
        base.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // count)))
    procs = [subprocess.Popen([sys.executable, "-m", "core", *argv],
                              env={**base, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(count)]

    def forward(signum: int, frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return wait_for_ranks(procs)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_for_ranks(procs: list[subprocess.Popen], grace_s: float = STOP_GRACE_S) -> int:
    """Wait for every rank. After the first failure the others get ``grace_s`` to end on their own (bad input
    fails on every rank, and rank 0 says why), then SIGTERM, then after ``grace_s`` more SIGKILL (a rank waiting
    in a collective for a dead one). Returns the first failure's exit code (128 + N for a rank killed by signal N),
    else 0."""
    failed, since, signalled = 0, 0.0, set()
    while True:
        codes = [p.poll() for p in procs]
        if None not in codes:
            first = failed or next((code for code in codes if code), 0)
            return 128 - first if first < 0 else first
        if not failed:
            failed, since = next((code for code in codes if code not in (None, 0)), 0), time.monotonic()
        waited = time.monotonic() - since
        for p, code in zip(procs, codes):
            if failed and code is None and waited > 2 * grace_s:
                p.kill()
            elif failed and code is None and waited > grace_s and p.pid not in signalled:
                p.terminate()
                signalled.add(p.pid)
        time.sleep(POLL_S)
