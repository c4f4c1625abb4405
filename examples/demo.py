"""The demo pipeline: synthetic sales records, summarised in parallel, saved as a report.

Run it with the `daglite` command (the README's first command):

    daglite run examples/demo.py:sales_report --backend process

1. `generate` makes a few thousand synthetic sales records (deterministic for a seed);
2. `summarize` scores and summarises one batch of them; `map_tasks` runs the batches on
   the session's backend (worker processes with `--backend process`), and each batch
   logs through `daglite.get_logger()` from wherever it runs;
3. `aggregate` merges the batch summaries into one report, saved as a JSON dataset under
   `.daglite/datasets/reports/`.

Every task is cached (`cache=True`), so a second run with the same parameters is
near-instant: its "session finished" line counts every call as `cached` (add `-v` to
see a line per cache hit).
"""

from __future__ import annotations

import math
import random
from typing import Any
from typing import Literal

from daglite import get_logger
from daglite import map_tasks
from daglite import task
from daglite import workflow

REGIONS = ("north", "south", "east", "west", "central")
PRODUCTS = ("widget", "gadget", "gizmo", "doohickey", "sprocket", "flange")


@task(cache=True)
def generate(records: int, seed: int) -> list[dict[str, Any]]:
    """Synthetic sales records: region, product, quantity, unit price and discount."""
    rng = random.Random(seed)
    return [
        {
            "id": i,
            "region": rng.choice(REGIONS),
            "product": rng.choice(PRODUCTS),
            "quantity": rng.randint(1, 40),
            "unit_price": round(rng.lognormvariate(3.0, 0.6), 2),
            "discount": rng.choice((0.0, 0.0, 0.05, 0.1, 0.2)),
        }
        for i in range(records)
    ]


def _risk(record: dict[str, Any], rounds: int) -> float:
    # A deliberately CPU-bound score (a few hundred float operations a record), so that
    # running batches on several processes pays off.
    x = record["quantity"] * record["unit_price"] * (1 - record["discount"])
    score = 0.0
    for k in range(1, rounds + 1):
        score += math.sin(x / k) ** 2 / k
    return score


@task(cache=True)
def summarize(batch: list[dict[str, Any]], rounds: int = 300) -> dict[str, Any]:
    """Revenue, units and mean risk score per region for one batch of records."""
    log = get_logger()
    regions: dict[str, dict[str, float]] = {}
    for record in batch:
        revenue = record["quantity"] * record["unit_price"] * (1 - record["discount"])
        stats = regions.setdefault(
            record["region"], {"records": 0, "units": 0, "revenue": 0.0, "risk": 0.0}
        )
        stats["records"] += 1
        stats["units"] += record["quantity"]
        stats["revenue"] += revenue
        stats["risk"] += _risk(record, rounds)
    log.info("batch summarised", records=len(batch), regions=len(regions))
    return regions


@task(cache=True, dataset="reports/sales-{name}.json")
def aggregate(summaries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Merge batch summaries into one report: totals and per-region figures."""
    regions: dict[str, dict[str, float]] = {}
    for summary in summaries:
        for region, stats in summary.items():
            total = regions.setdefault(
                region, {"records": 0, "units": 0, "revenue": 0.0, "risk": 0.0}
            )
            for key, value in stats.items():
                total[key] += value
    report_regions = {
        region: {
            "records": int(stats["records"]),
            "units": int(stats["units"]),
            "revenue": round(stats["revenue"], 2),
            "mean_risk": round(stats["risk"] / stats["records"], 4),
        }
        for region, stats in sorted(regions.items())
    }
    return {
        "name": name,
        "records": sum(r["records"] for r in report_regions.values()),
        "revenue": round(sum(r["revenue"] for r in report_regions.values()), 2),
        "top_region": max(report_regions, key=lambda r: report_regions[r]["revenue"]),
        "regions": report_regions,
    }


@workflow
def sales_report(
    records: int = 5000,
    batches: int = 8,
    seed: int = 7,
    detail: Literal["fast", "thorough"] = "fast",
) -> dict[str, Any]:
    """Generate synthetic sales, summarise them in parallel batches, save a report.

    Args:
        records: How many synthetic sales records to generate.
        batches: How many batches `map_tasks` spreads them over.
        seed: Random seed of the generator (same seed, same records, cache hits).
        detail: "thorough" makes the per-record risk score ten times costlier.
    """
    if records < 1 or batches < 1:
        raise ValueError("records and batches must be at least 1")
    rows = generate(records, seed)
    size = -(-len(rows) // batches)
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
    rounds = 300 if detail == "fast" else 3000
    summaries = map_tasks(summarize, chunks, [rounds] * len(chunks))
    return aggregate(summaries, f"{records}-{seed}-{detail}")


if __name__ == "__main__":
    print(sales_report())
