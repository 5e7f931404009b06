import asyncio
import os
import subprocess
import sys
import time

import pytest

from replayer.send.eventloop import Alarm, new_event_loop


def _numbers_printed_by(script: str) -> list[int]:
    """Run `script` in a fresh interpreter (process limits and tables are per process); its printed ints."""
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return [int(word) for word in output.split()]


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="FDSize is read from Linux's /proc")
def test_the_descriptor_table_is_grown_ahead_and_no_descriptor_is_left_open():
    script = ("import os\n"
              "from replayer.send.eventloop import reserve_fd_table\n"
              "size = lambda: int(next(l for l in open('/proc/self/status') if l.startswith('FDSize')).split()[1])\n"
              "before, fds = size(), len(os.listdir('/proc/self/fd'))\n"
              "reserve_fd_table(3000)\n"
              "print(before, size(), len(os.listdir('/proc/self/fd')) - fds)\n")
    before, after, leaked = _numbers_printed_by(script)
    assert before < 3000 <= after and leaked == 0


def test_a_low_soft_open_files_limit_is_raised_to_the_hard_one():
    script = ("import resource\n"
              "from replayer.send.eventloop import raise_fd_limit\n"
              "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
              "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
              "expected = 1 << 20 if hard == resource.RLIM_INFINITY else hard\n"
              "print(raise_fd_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0], expected)\n")
    returned, soft, expected = _numbers_printed_by(script)
    assert returned == soft == expected > 256


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the exact alarm is a Linux timerfd")
@pytest.mark.parametrize("uvloop_loop", [True, False])
def test_an_alarm_never_wakes_before_its_instant_and_leaves_no_descriptor(uvloop_loop):
    loop = new_event_loop() if uvloop_loop else asyncio.new_event_loop()
    woke_late_by_ns = []

    async def wait_several() -> None:
        alarm = Alarm(loop)
        try:
            for delay_us in (0, 50, 300, 700, 1_300, 2_600):  # below, at and above uvloop's 1 ms timer tick
                when_ns = time.perf_counter_ns() + delay_us * 1_000
                await alarm.until(when_ns)
                woke_late_by_ns.append(time.perf_counter_ns() - when_ns)
        finally:
            alarm.close()

    open_before = set(os.listdir("/proc/self/fd")) if os.path.exists("/proc/self/fd") else set()
    loop.run_until_complete(wait_several())
    loop.close()
    assert len(woke_late_by_ns) == 6 and min(woke_late_by_ns) >= 0
    if open_before:
        assert set(os.listdir("/proc/self/fd")) <= open_before | {str(fd) for fd in range(3)}
