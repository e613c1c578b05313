"""The ``raygram`` command: ``up`` starts the stack in the foreground, ``down`` stops it, ``status`` prints its
figures (``ops_status``), ``serve apply`` changes its Serve config live (replicas, settings), ``events`` lists
(``dead``) or puts back (``replay``) the events the background consumers gave up on, ``import`` loads a
social graph into it (``lab.import_command``), ``simulate`` runs a lab experiment (docs/lab.md)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from config import Settings
from lab import import_command
from launcher import ManagedProcess, ProcessIdentity, ServiceStartError, exclusive
from stack import Stack, wait_for_http


def up(settings: Settings, dashboard: bool = False) -> int:
    """Start the stack in the foreground, unless a ``raygram up`` already runs for this state folder.

    ``dashboard``: start Ray's dashboard with a local Ray (about 300 MB more, ``bench/footprint.py``).
    """
    stack = Stack(settings)
    with exclusive(stack.state_dir / "stack.lock") as lock:  # released by the system however we exit
        if lock is None:
            running = ProcessIdentity.read(stack.state_dir / "stack.pid")
            pid = f" (pid {running.pid})" if running is not None and running.alive() else ""
            print(f"raygram is already running{pid} for {stack.state_dir}; `raygram down` stops it", file=sys.stderr)
            return 1
        return run_stack(settings, stack, dashboard)


def run_stack(settings: Settings, stack: Stack, dashboard: bool) -> int:
    started_at = time.monotonic()
    stack_pid = stack.state_dir / "stack.pid"
    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    try:
        print("raygram: starting services")
        stack.start_services()
        print("raygram: starting Ray and the Serve app")
        stack.start_ray(dashboard=dashboard)
        stack.deploy()
        # Installed after ray.init, which sets handlers of its own that would
        # exit before the services we started are stopped.
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        wait_for_http(f"http://{settings.http_host}:{settings.http_port}/health")
        ProcessIdentity.current().write(stack_pid)
        print(f"\nraygram is up in {time.monotonic() - started_at:.1f}s")
        print(f"  API        {settings.base_url}/api/v1/instance")
        print(f"  API docs   {settings.base_url}/docs")
        print(f"  health     {settings.base_url}/health")
        print(f"  dashboard  {stack.dashboard_url() or 'off (`raygram up --dashboard` starts it)'}")
        print(f"  metrics    {', '.join(stack.metrics_urls())}  (`raygram status` sums them up)")
        print("Ctrl-C (or `raygram down`) stops what this command started.", flush=True)
        while not stop_requested:
            time.sleep(0.5)
    except ServiceStartError as exc:
        print(f"raygram: {exc}", file=sys.stderr)
        return 1
    finally:
        print("\nraygram: stopping", flush=True)
        stack.stop()
        stack_pid.unlink(missing_ok=True)
    return 0


def down(settings: Settings) -> int:
    """Stop a running ``raygram up`` (which stops its services), then any service it left behind.

    Only processes whose pid file still names them (pid and start time) are signalled: a stale pid
    file whose pid now belongs to another process is ignored.
    """
    state_dir = settings.state_dir.resolve()
    running = ProcessIdentity.read(state_dir / "stack.pid")
    stopped = running is not None and running.signal(signal.SIGTERM)
    if running is not None and stopped:
        deadline = time.monotonic() + 60
        while running.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        print(f"stopped raygram (pid {running.pid})")
    for name in ("seaweedfs", "graph", "redis"):
        leftover = ManagedProcess(name, state_dir / f"{name}.pid", state_dir / f"{name}.log")
        if leftover.running_pid() is not None:
            leftover.stop()
            print(f"stopped the {name} server it had left running")
    if not stopped:
        print("raygram was not running")
    return 0


def events(settings: Settings, action: str, group: str | None, limit: int) -> int:
    """``events dead`` lists dead-lettered events; ``events replay`` puts them back for their group."""
    import asyncio

    from redis_store.client import redis_from
    from redis_store.durability import Durability
    from redis_store.events import EventStream

    async def run() -> int:
        redis = redis_from(settings)
        stream = EventStream(redis, maxlen=settings.event_stream_max, durability=Durability.configured(settings))
        try:
            for name in [group] if group else await stream.groups():
                if action == "replay":
                    print(f"{name}: {await stream.replay(name, limit)} dead-lettered events put back on the stream")
                    continue
                for dead in await stream.dead_letters(name, limit):
                    print(f"{name}\t{dead.origin_id}\t{dead.type}\t{dead.attempts} tries\t{dead.error}\t{dead.data}")
        finally:
            await redis.aclose()
        return 0

    return asyncio.run(run())


def run_simulation(experiment: Path, results: Path) -> int:
    """``raygram simulate``: the lab's run (``lab.simulate``), its report in a new folder under ``results``."""
    from lab.experiment import ExperimentError
    from lab.simulate import simulate

    try:
        simulate(experiment, results)
    except ExperimentError as exc:
        print(f"raygram simulate: {exc}", file=sys.stderr)
        return 2
    return 0


def serve_apply(settings: Settings, config_file: Path) -> int:
    """Apply a Serve config (``deploy/serve.yaml``'s format) to the running stack's Serve, as ``serve deploy``
    would through the dashboard; returns once its applications run."""
    import yaml

    from ops_status import read_endpoints

    endpoints = read_endpoints(settings.state_dir.resolve())
    if endpoints is None:
        print(f"raygram is not running for {settings.state_dir}; `raygram up` starts it", file=sys.stderr)
        return 1
    config = yaml.safe_load(config_file.read_text())
    if endpoints["ray_address"].startswith("127.0.0.1:"):  # a local Ray, whose node address is the loopback one
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # (Stack.start_ray); read as Ray is imported
    import ray

    ray.init(address=endpoints["ray_address"], namespace=endpoints["ray_namespace"], log_to_driver=False)
    try:
        import serve_app

        serve_app.apply_config(config)
    finally:
        ray.shutdown()
    print(f"applied {config_file}: " + ", ".join(a["name"] for a in config["applications"]) + " running")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="raygram", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_command = commands.add_parser("up", help="start the stack in the foreground")
    up_command.add_argument(
        "--dashboard",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="start Ray's dashboard too (off by default: it costs about 300 MB; a Ray at RAY_ADDRESS has its own)",
    )
    commands.add_parser("down", help="stop a running stack")
    status_command = commands.add_parser("status", help="the running stack's figures at a glance")
    status_command.add_argument("--window", type=float, default=10.0, help="seconds between the two scrapes")
    status_command.add_argument(
        "--metrics-url", action="append", help="a metrics endpoint to read (default: those in stack.json)"
    )
    serve_command = commands.add_parser("serve", help="the running Serve application").add_subparsers(
        dest="action", required=True
    )
    apply_command = serve_command.add_parser("apply", help="apply a Serve config file (deploy/serve.yaml's format)")
    apply_command.add_argument("config_file", type=Path)
    for command in (status_command, apply_command):
        command.add_argument("--state-dir", type=Path, help="the stack's state folder (default: STATE_DIR, .raygram)")
    event_commands = commands.add_parser("events", help="dead-lettered events").add_subparsers(
        dest="action", required=True
    )
    for action, text in (("dead", "list dead-lettered events"), ("replay", "put them back for their group")):
        sub = event_commands.add_parser(action, help=text)
        sub.add_argument("--group", help="one consumer group (default: every group)")
        sub.add_argument("--limit", type=int, default=1000, help="at most this many per group, oldest first")
    import_command.add_arguments(commands.add_parser("import", help="load a social graph as accounts and follows"))
    simulate = commands.add_parser("simulate", help="run a simulation experiment (docs/lab.md)")
    simulate.add_argument("experiment", type=Path, help="the experiment file (TOML), e.g. experiments/quick.toml")
    simulate.add_argument("--results", type=Path, default=Path("results"), help="where the run's folder goes")
    args = parser.parse_args(argv)
    if args.command == "simulate":
        return run_simulation(args.experiment, args.results)
    settings = Settings()
    if getattr(args, "state_dir", None) is not None:
        settings.state_dir = args.state_dir
    if args.command == "status":
        from ops_status import status

        return status(settings.state_dir.resolve(), args.window, args.metrics_url)
    if args.command == "serve":
        return serve_apply(settings, args.config_file)
    if args.command == "import":
        return import_command.run(settings, args)
    if args.command == "events":
        return events(settings, args.action, args.group, args.limit)
    return up(settings, args.dashboard) if args.command == "up" else down(settings)


if __name__ == "__main__":
    sys.exit(main())
