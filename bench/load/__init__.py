"""An open-loop load generator for raygram: a generated population, a realistic mix, honest latencies.

The benchmarks (docs/performance.md) run open loop at fixed arrival rates, with
DeathStarBench's mix (60 % home reads, 30 % profile reads, 10 % posts, plus
likes and follows), many users on a power-law graph with a few celebrities,
photos on a third of the posts and reads spread over hot and cold users.
This package does that, and records what was acknowledged so that the chaos
suite (``bench/chaos.py``) can prove nothing acknowledged was lost.

Use it in five steps::

    plan = plan_population(PopulationSpec(users=1000, celebrities=3))
    # start the stack with plan.stack_env() in its environment (the celebrity threshold)
    ops = plan_schedule(plan, Mix(), rate=30, duration=60)              # decided before the run
    async with aiohttp.ClientSession() as http:
        population = await seed_population(plan, stack.settings, http)  # graph batches + token service
        await upload_photos(population, http, base_url, photos_needed(ops))
    async with OpenLoop(base_url, population, AckLog(path)) as loop:
        records = await loop.run(ops)                                   # returns when the schedule is done
    print(summarize(records).p99, by_kind(records), windows(records, 5.0))

Several schedules (say, one per offered rate) can run one after another on
the same ``OpenLoop`` (its world view carries over); pass all of them to
``photos_needed``. ``Checker`` (``verify``) answers "was anything
acknowledged lost?" and "is every sampled feed exactly what the graph says?".
The modules: ``population`` (plan and seeding), ``mix`` (kinds, weights,
schedule), ``runner`` (open loop, records, acknowledgement log), ``stats``
(percentiles, windows, tables), ``verify`` (the checks).
"""

from bench.load.mix import KINDS, WRITES, Mix, Op, photos_needed, plan_schedule
from bench.load.population import (
    Member,
    Population,
    PopulationPlan,
    PopulationSpec,
    plan_population,
    seed_population,
    upload_photos,
)
from bench.load.runner import CONNECT, OVERLOAD, TIMEOUT, AckedPair, AckedPost, AckLog, OpenLoop, Record, World
from bench.load.stats import (
    SUMMARY_HEADERS,
    Summary,
    by_kind,
    percentile,
    plain_table,
    print_table,
    status_name,
    summarize,
    summary_row,
    windows,
)
from bench.load.verify import Checker, Convergence, FeedDiff, Losses

__all__ = [
    "CONNECT",
    "KINDS",
    "OVERLOAD",
    "SUMMARY_HEADERS",
    "TIMEOUT",
    "WRITES",
    "AckLog",
    "AckedPair",
    "AckedPost",
    "Checker",
    "Convergence",
    "FeedDiff",
    "Losses",
    "Member",
    "Mix",
    "Op",
    "OpenLoop",
    "Population",
    "PopulationPlan",
    "PopulationSpec",
    "Record",
    "Summary",
    "World",
    "by_kind",
    "percentile",
    "photos_needed",
    "plain_table",
    "plan_population",
    "plan_schedule",
    "print_table",
    "seed_population",
    "status_name",
    "summarize",
    "summary_row",
    "upload_photos",
    "windows",
]
