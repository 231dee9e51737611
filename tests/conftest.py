"""Shared pytest fixtures: no network, the Omniglot folder, and the decoded dataset.

The Makefile and CI set ``$METALEARN_LAB_DATA`` to the folder holding the Omniglot zips. Tests
never skip when the data is missing: the ``omniglot_root`` fixture fails with instructions.
"""

from __future__ import annotations

import socket

import matplotlib

matplotlib.use("Agg")  # no window, whatever MPLBACKEND says

import pytest  # noqa: E402
import torch  # noqa: E402

from metalearn_lab import paths  # noqa: E402


class NetworkBlockedError(OSError):
    """Raised by any attempt to open a network connection during the tests."""


def _is_local(sock: socket.socket, address) -> bool:
    # Unix sockets and loopback are not "the network" (Jupyter kernels in notebook tests use them).
    if getattr(socket, "AF_UNIX", None) is not None and sock.family == socket.AF_UNIX:
        return True
    host = address[0] if isinstance(address, tuple) else address
    return host in {"localhost", "127.0.0.1", "::1"}


@pytest.fixture(scope="session", autouse=True)
def no_network():
    """Make every non-local connection attempt raise :class:`NetworkBlockedError` (an OSError,
    so download code sees exactly what it would see offline)."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_create_connection = socket.create_connection

    def guard(sock, address):
        if not _is_local(sock, address):
            raise NetworkBlockedError(f"tests must not use the network (tried to connect to {address!r})")

    def connect(sock, address):
        guard(sock, address)
        return original_connect(sock, address)

    def connect_ex(sock, address):
        guard(sock, address)
        return original_connect_ex(sock, address)

    def create_connection(address, *args, **kwargs):
        if address[0] not in {"localhost", "127.0.0.1", "::1"}:
            raise NetworkBlockedError(f"tests must not use the network (tried to connect to {address!r})")
        return original_create_connection(address, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket.socket, "connect_ex", connect_ex)
        mp.setattr(socket, "create_connection", create_connection)
        yield


@pytest.fixture(scope="session")
def omniglot_root():
    """The folder with the Omniglot zips (``paths.data_dir()``); fails the test if absent."""
    root = paths.data_dir()
    needed = ("images_background.zip", "images_evaluation.zip", "all_runs.zip")
    missing = [name for name in needed if not (root / name).is_file()]
    if missing:
        pytest.fail(
            f"Omniglot data missing: {', '.join(missing)} not in {root}. Set "
            f"{paths.DATA_ENV} to the folder holding the three zips (make test does this when "
            f"../shared/data/omniglot exists), or see metalearn_lab.data.download_omniglot.",
            pytrace=False,
        )
    return root


@pytest.fixture(scope="session")
def omniglot(omniglot_root):
    """All of Omniglot at 28x28 (``load_omniglot()``): decoded once, then from the cache."""
    from metalearn_lab.data import load_omniglot

    return load_omniglot(omniglot_root)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread per test: on a busy 2-core machine, oversubscribed threads crawl (a MAML
    test took 207 s with two threads and 14 s with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
