"""Image variants per second: Ray remote tasks against a process pool, same files, same run.

Both sides run ``media.images.render_image`` (the code the production task
runs: orientation, four variants, blurhash) on the same photos, one task per
file, one worker per core. The pool is the ceiling a single machine gets
without Ray; the ratio says what Ray's scheduling costs on top (goal: at
least 80 %). Rounds alternate between the two so that background load hits
both alike; the best round of each counts.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from media.images import render_image

IMAGES = 24
SIZE = (2000, 1333)
ROUNDS = 3


def render_summary(path: str) -> int:
    """Make every variant of one file; return how many (the bytes stay in the worker, as in production)."""
    return len(render_image(Path(path)).variants)


def make_photos(folder: Path, count: int) -> list[str]:
    """Photo-like JPEGs: a gradient with shapes and sensor-like noise, each different."""
    paths = []
    base = Image.linear_gradient("L").resize(SIZE)
    for i in range(count):
        noise = Image.effect_noise(SIZE, 24 + i % 8)
        image = Image.merge("RGB", (base, noise, base.rotate(90 + i, expand=False)))
        draw = ImageDraw.Draw(image)
        draw.ellipse((100 + 20 * i, 100, 900 + 20 * i, 900), fill=(200, 40 + 5 * i, 60))
        path = folder / f"photo{i}.jpg"
        image.save(path, "JPEG", quality=90)
        paths.append(str(path))
    return paths


def timed(run, paths: list[str]) -> float:
    """Variants per second of one round."""
    started = time.perf_counter()
    variants = run(paths)
    return variants / (time.perf_counter() - started)


def main() -> None:
    import ray

    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="raygram-media-bench-") as folder:
        paths = make_photos(Path(folder), IMAGES)
        # spawn, not fork: forking a process that runs Ray's threads is unsafe.
        with multiprocessing.get_context("spawn").Pool(cpus) as pool:
            started_ray = not ray.is_initialized()
            if started_ray:
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            try:
                remote = ray.remote(num_cpus=1)(render_summary)

                def with_pool(batch: list[str]) -> int:
                    return sum(pool.map(render_summary, batch, chunksize=1))

                def with_ray(batch: list[str]) -> int:
                    return sum(ray.get([remote.remote(p) for p in batch]))

                with_pool(paths[:cpus])  # warm up: workers started, Pillow imported
                with_ray(paths[:cpus])
                pool_rates, ray_rates = [], []
                for _ in range(ROUNDS):
                    pool_rates.append(timed(with_pool, paths))
                    ray_rates.append(timed(with_ray, paths))
            finally:
                if started_ray:
                    ray.shutdown()
    best_pool, best_ray = max(pool_rates), max(ray_rates)
    print(f"media variants: {IMAGES} photos of {SIZE[0]}x{SIZE[1]}, {cpus} workers, best of {ROUNDS} rounds")
    print(f"  process pool : {best_pool:8.1f} variants/s")
    print(f"  ray tasks    : {best_ray:8.1f} variants/s")
    print(f"  ratio        : {100 * best_ray / best_pool:8.1f} % (goal >= 80 %)")


if __name__ == "__main__":
    main()
