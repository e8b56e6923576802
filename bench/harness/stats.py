"""Percentiles and the "median [min–max]" summaries the report prints."""

import math
import statistics


def percentile(values, pct):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(latencies_ms):
    """p50/p90/p99/max of one run's latencies, in ms."""
    return {
        "n": len(latencies_ms),
        "p50": percentile(latencies_ms, 50),
        "p90": percentile(latencies_ms, 90),
        "p99": percentile(latencies_ms, 99),
        "max": max(latencies_ms),
    }


def spread(values):
    """Median, min and max of several runs' figures (None if there are none)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def fmt(summary, digits=1, unit=""):
    """Format a spread() result as 'median [min–max]'."""
    if summary is None:
        return "n/a"
    med, lo, hi = summary["median"], summary["min"], summary["max"]
    if summary["runs"] == 1 or lo == hi:
        return f"{med:.{digits}f}{unit}"
    return f"{med:.{digits}f}{unit} [{lo:.{digits}f}–{hi:.{digits}f}]"
