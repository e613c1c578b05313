"""``python -m bench [part [options]]``: every benchmark in turn (``make bench``), or one part of it.

Parts: ``mix`` (raygram and the bare baseline under the open-loop mix, rate by
rate: the headline; ``python -m bench mix --help``), ``feed`` (fan-out,
celebrity posts and home-read cost against followed celebrities, likes;
``python -m bench feed celebrity`` runs one of them), ``tags`` (tag-timeline
reads at 100k tagged posts against the raw Redis read), ``media`` (variant
rendering), ``import`` (``raygram import`` of a real graph against follows
through the API; ``python -m bench import --help``), ``search`` (status
search p99 at 100k indexed posts against the engine alone). The media
benchmark is owned separately and may be missing; it is imported lazily so
the others run either way. Missed goals are printed,
not turned into a failing exit status: a benchmark reports, the tests judge.
A part that crashes is reported and the next one runs; then the exit status
is 1.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import traceback


def media(argv: list[str]) -> None:
    if importlib.util.find_spec("bench.media_bench") is None:
        print("\nbench/media_bench.py is not there yet: media benchmark skipped", flush=True)
        return
    from bench import media_bench

    media_bench.main()


def mix(argv: list[str]) -> None:
    from bench import mix_bench

    mix_bench.main(argv)


def feed(argv: list[str]) -> None:
    from bench import feed_bench

    feed_bench.main(argv)


def tags(argv: list[str]) -> None:
    from bench import tags_bench

    tags_bench.main(argv)


def import_graph(argv: list[str]) -> None:
    from bench import import_bench

    import_bench.main(argv)


def search(argv: list[str]) -> None:
    from bench import search_bench

    search_bench.main(argv)


PARTS = {"mix": mix, "feed": feed, "tags": tags, "media": media, "import": import_graph, "search": search}


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return
    if args:
        if args[0] not in PARTS:
            raise SystemExit(f"unknown part {args[0]!r}; choose from {', '.join(PARTS)}")
        PARTS[args[0]](args[1:])
        return
    started, load = time.perf_counter(), os.getloadavg()
    print(f"make bench: load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}", flush=True)
    failed = []
    for name, run in PARTS.items():
        try:
            run([])
        except Exception:  # one part's crash must not cost the others' figures; the exit status says it
            traceback.print_exc()
            print(f"\nTHE {name.upper()} BENCHMARK FAILED (above); going on with the next part", flush=True)
            failed.append(name)
    end = os.getloadavg()
    print(
        f"\nmake bench done in {time.perf_counter() - started:.0f}s; "
        f"load average at the end {end[0]:.1f} / {end[1]:.1f} / {end[2]:.1f}"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""),
        flush=True,
    )
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
