"""Hosting the simulator: on a running loop, in a background thread (`run` without `--base-url`),
or in the foreground (`replayer simulate`)."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from replayer.errors import ConfigError
from replayer.send.eventloop import new_event_loop, raise_fd_limit, reserve_fd_table
from replayer.sim.server import SHUTDOWN_TIMEOUT_S, Simulator, SimulatorConfig


async def start(config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, int]:
    """Start serving on the running loop; returns the runner (to clean up) and the bound port."""
    runner = web.AppRunner(Simulator(config).app(), access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"simulator cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = runner.addresses[0][1]
    return runner, bound


class SimulatorThread:
    """The simulator on its own event loop in a background thread, for `run` without `--base-url`."""

    def __init__(self, config: SimulatorConfig, host: str = "127.0.0.1"):
        self.config = config
        self.host = host
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> SimulatorThread:
        self._thread = threading.Thread(target=self._serve, name="replayer-simulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure
        return self

    def _serve(self) -> None:
        loop = new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            runner, self.port = loop.run_until_complete(start(self.config, self.host))
        except BaseException as exc:  # reported to the starting thread
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.close()

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


def serve(config: SimulatorConfig, host: str, port: int) -> None:
    """Run the simulator in the foreground until interrupted (`replayer simulate`)."""
    reserve_fd_table(min(raise_fd_limit(), 65_536))  # each stream it serves holds a socket
    web.run_app(Simulator(config).app(), host=host, port=port, access_log=None, print=None,
                loop=new_event_loop(), backlog=4096, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
