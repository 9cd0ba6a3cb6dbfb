"""Regenerate report.ipynb, the daily report template (the committed notebook is the source of
truth for users; this script keeps it clean and reviewable: fixed cell ids, no outputs).

    python build_notebook.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

CELLS: list[tuple[str, str, str, list[str]]] = [
    # (id, cell type, source, tags)
    (
        "title",
        "markdown",
        "# Bikeshare daily report\n\n"
        "Trips of one day: when people ride, who rides, and from where. Run it for a day with\n"
        "`paramill report.ipynb output/report_2019-11-07.ipynb -p date 2019-11-07`.",
        [],
    ),
    (
        "imports",
        "code",
        "%matplotlib inline\nimport matplotlib.pyplot as plt\nimport pandas as pd",
        [],
    ),
    (
        "parameters",
        "code",
        '# the day to report on (YYYY-MM-DD)\ndate = "2019-11-01"\n'
        "# trips CSV written by make_data.py\n"
        'data_path = "data/trips.csv"',
        ["parameters"],
    ),
    (
        "load",
        "code",
        'trips = pd.read_csv(data_path, parse_dates=["start_time"])\n'
        "day = pd.Timestamp(date).date()\n"
        "trips = trips[trips.start_time.dt.date == day]\n"
        "if trips.empty:\n"
        '    raise ValueError(f"no trips on {date} in {data_path}")\n'
        "trips = trips.assign(hour=trips.start_time.dt.hour)\n"
        'print(f"{len(trips)} trips on {date}, "\n'
        '      f"median duration {trips.duration_minutes.median():g} min")',
        [],
    ),
    (
        "hourly-usage",
        "markdown",
        "## Hourly usage",
        [],
    ),
    (
        "hourly-usage-plot",
        "code",
        'by_hour = trips.groupby("hour").size().reindex(range(24), fill_value=0)\n'
        "fig, ax = plt.subplots(figsize=(8, 3))\n"
        'ax.plot(by_hour.index, by_hour.values, marker="o")\n'
        'ax.set(title=f"Trips per hour, {date}", xlabel="hour of day", ylabel="trips",\n'
        "       xticks=range(0, 24, 2))\n"
        "plt.show()",
        [],
    ),
    (
        "subscribers",
        "markdown",
        "## Subscriber types",
        [],
    ),
    (
        "subscribers-plot",
        "code",
        "by_type = trips.subscriber_type.value_counts()\n"
        "fig, ax = plt.subplots(figsize=(6, 3))\n"
        "by_type.plot.bar(ax=ax, rot=0)\n"
        'ax.set(title=f"Trips by subscriber type, {date}", xlabel="", ylabel="trips")\n'
        "plt.show()",
        [],
    ),
    (
        "stations",
        "markdown",
        "## Start stations",
        [],
    ),
    (
        "stations-plot",
        "code",
        "by_station = trips.start_station_id.value_counts()\n"
        "fig, ax = plt.subplots(figsize=(8, 3))\n"
        "by_station.plot.bar(ax=ax, rot=45)\n"
        'ax.set(title=f"Trips by start station, {date}", xlabel="station", ylabel="trips")\n'
        "plt.show()",
        [],
    ),
    (
        "heatmap",
        "markdown",
        "## Hour x station",
        [],
    ),
    (
        "heatmap-plot",
        "code",
        "grid = (\n"
        '    trips.pivot_table(index="start_station_id", columns="hour",\n'
        '                      values="duration_minutes", aggfunc="size", fill_value=0)\n'
        "    .reindex(columns=range(24), fill_value=0)\n"
        "    .loc[by_station.index]\n"
        ")\n"
        "fig, ax = plt.subplots(figsize=(9, 4))\n"
        'image = ax.imshow(grid.values, aspect="auto", cmap="viridis")\n'
        "ax.set_yticks(range(len(grid.index)), grid.index)\n"
        "ax.set_xticks(range(0, 24, 2))\n"
        'ax.set(title=f"Trips by hour and start station, {date}", xlabel="hour of day",\n'
        '       ylabel="station")\n'
        'fig.colorbar(image, ax=ax, label="trips")\n'
        "plt.show()",
        [],
    ),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    for cell_id, kind, source, tags in CELLS:
        make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        cell = make(source, id=cell_id)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main() -> None:
    path = HERE / "report.ipynb"
    path.write_text(nbformat.writes(build()) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
