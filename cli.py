"""The ``raygram`` command: ``up`` starts the stack in the foreground, ``down`` stops it."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from config import Settings
from launcher import ManagedProcess, ServiceStartError, pid_alive
from stack import Stack, wait_for_http


def up(settings: Settings) -> int:
    started_at = time.monotonic()
    stack = Stack(settings)
    stack_pid = ManagedProcess("stack", stack.state_dir / "stack.pid", stack.state_dir / "stack.log")
    if (pid := stack_pid.running_pid()) is not None and pid != os.getpid():
        print(f"raygram is already running (pid {pid}); `raygram down` stops it", file=sys.stderr)
        return 1
    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    try:
        print("raygram: starting services")
        stack.start_services()
        print("raygram: starting Ray and the Serve app")
        stack.start_ray()
        stack.deploy()
        # Installed after ray.init, which sets handlers of its own that would
        # exit before the services we started are stopped.
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        wait_for_http(f"http://{settings.http_host}:{settings.http_port}/health")
        stack.state_dir.mkdir(parents=True, exist_ok=True)
        stack_pid.pid_file.write_text(str(os.getpid()))
        print(f"\nraygram is up in {time.monotonic() - started_at:.1f}s")
        print(f"  API        {settings.base_url}/api/v1/instance")
        print(f"  API docs   {settings.base_url}/docs")
        print(f"  health     {settings.base_url}/health")
        print(f"  dashboard  {stack.dashboard_url()}")
        print("Ctrl-C (or `raygram down`) stops what this command started.", flush=True)
        while not stop_requested:
            time.sleep(0.5)
    except ServiceStartError as exc:
        print(f"raygram: {exc}", file=sys.stderr)
        return 1
    finally:
        print("\nraygram: stopping", flush=True)
        stack.stop()
        stack_pid.pid_file.unlink(missing_ok=True)
    return 0


def down(settings: Settings) -> int:
    """Stop a running ``raygram up`` (which stops its services), then any service it left behind."""
    state_dir = settings.state_dir.resolve()
    stack_pid = ManagedProcess("stack", state_dir / "stack.pid", state_dir / "stack.log")
    pid = stack_pid.running_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        print(f"stopped raygram (pid {pid})")
    for name in ("graph", "redis"):
        leftover = ManagedProcess(name, state_dir / f"{name}.pid", state_dir / f"{name}.log")
        if leftover.running_pid() is not None:
            leftover.stop()
            print(f"stopped the {name} server it had left running")
    if pid is None:
        print("raygram was not running")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="raygram", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    settings = Settings()
    return up(settings) if args.command == "up" else down(settings)


if __name__ == "__main__":
    sys.exit(main())
