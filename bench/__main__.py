"""``python -m bench``: run every benchmark module in turn.

The media benchmark is owned separately and may not exist yet; it is imported
lazily so that the feed benchmarks run either way. Missed goals are printed,
not turned into a failing exit status: a benchmark reports, the tests judge.
"""

from __future__ import annotations

import importlib.util


def main() -> None:
    from bench import feed_bench

    feed_bench.main([])
    if importlib.util.find_spec("bench.media_bench") is None:
        print("\nbench/media_bench.py is not there yet: media benchmark skipped", flush=True)
        return
    from bench import media_bench

    media_bench.main()


if __name__ == "__main__":
    main()
