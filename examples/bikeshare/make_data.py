"""Write a small, deterministic bikeshare trips dataset for the daily report example.

Two weeks of trips (2019-11-01 .. 2019-11-14), a few thousand rows, with commuter peaks on
weekdays and a midday hump at weekends, so every day's plots have some shape. Only the
standard library is used, and the seed is fixed: the same file every time, on every machine.

    python make_data.py [--out data/trips.csv]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import random
from pathlib import Path

SEED = 20191107
FIRST_DAY = datetime.date(2019, 11, 1)
DAYS = 14
COLUMNS = ["start_time", "subscriber_type", "start_station_id", "duration_minutes"]

# station id -> popularity weight (a few busy downtown docks, a long tail of quiet ones)
STATIONS = {
    2494: 9, 2495: 7, 2496: 6, 2497: 5, 2498: 4, 2499: 4, 2501: 3,
    2502: 3, 2503: 2, 2504: 2, 2536: 2, 2537: 1, 2538: 1, 2539: 1,
}  # fmt: skip
# subscriber type -> (weekday weight, weekend weight, median trip minutes)
SUBSCRIBERS = {
    "Local365": (6, 3, 9),
    "Local30": (3, 2, 11),
    "Walk Up": (2, 5, 22),
    "24-Hour Kiosk": (1, 3, 28),
    "Weekender": (0, 2, 25),
}


def hour_weights(weekend: bool) -> list[float]:
    """Relative trip counts for hours 0..23."""
    if weekend:
        return [0.3 if h < 7 else 3 + 4 * (1 - abs(h - 14) / 8) if h < 22 else 1 for h in range(24)]
    commute = {7: 6, 8: 10, 9: 6, 16: 6, 17: 10, 18: 7}
    return [0.2 if h < 6 else commute.get(h, 3 if h < 22 else 1) for h in range(24)]


def trips(rng: random.Random) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    stations, station_weights = list(STATIONS), list(STATIONS.values())
    for offset in range(DAYS):
        day = FIRST_DAY + datetime.timedelta(days=offset)
        weekend = day.weekday() >= 5
        kinds = list(SUBSCRIBERS)
        kind_weights = [SUBSCRIBERS[k][1 if weekend else 0] for k in kinds]
        hours = hour_weights(weekend)
        for _ in range(rng.randint(300, 420) if weekend else rng.randint(200, 320)):
            kind = rng.choices(kinds, kind_weights)[0]
            start = datetime.datetime.combine(day, datetime.time()) + datetime.timedelta(
                hours=rng.choices(range(24), hours)[0], seconds=rng.randrange(3600)
            )
            median = SUBSCRIBERS[kind][2]
            rows.append(
                {
                    "start_time": start.isoformat(sep=" "),
                    "subscriber_type": kind,
                    "start_station_id": rng.choices(stations, station_weights)[0],
                    "duration_minutes": max(1, round(rng.lognormvariate(0, 0.6) * median)),
                }
            )
    rows.sort(key=lambda row: str(row["start_time"]))
    return rows


def write(path: Path) -> int:
    rows = trips(random.Random(SEED))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)  # a half-written file never looks like data
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent / "data" / "trips.csv"
    parser.add_argument("--out", type=Path, default=default, help=f"default: {default}")
    out = parser.parse_args().out
    count = write(out)
    print(f"wrote {count} trips to {out}")


if __name__ == "__main__":
    main()
