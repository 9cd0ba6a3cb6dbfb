"""The daily bikeshare report on Airflow 3, run by paramill.

The papermill version of this Dag ran ``PapermillOperator`` with
``parameters={"date": "{{ execution_date }}"}``. Moving to paramill changes one import; Airflow 3
renamed ``execution_date`` to ``logical_date``, and the notebook wants a ``YYYY-MM-DD`` day,
which is ``{{ ds }}``. Each day's run writes its own output notebook (a templated name) and
declares it as an Asset, so a downstream Dag can be scheduled on the reports.

Copy this file into your Dags folder. It finds the example notebook next to it
(``../bikeshare``) or in ``$BIKESHARE_DIR``. Try one day without a scheduler:

    airflow dags test bikeshare_daily_report 2019-11-07
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

from airflow.sdk import DAG, task

from paramill.integrations.airflow import NotebookOperator

BIKESHARE = Path(
    os.environ.get("BIKESHARE_DIR", Path(__file__).resolve().parent.parent / "bikeshare")
)
TRIPS = BIKESHARE / "data" / "trips.csv"

with DAG(
    dag_id="bikeshare_daily_report",
    description="Trips of one day: when people ride, who rides, and from where.",
    schedule="@daily",
    # the example dataset covers 2019-11-01 .. 2019-11-14
    start_date=datetime.datetime(2019, 11, 1, tzinfo=datetime.timezone.utc),
    end_date=datetime.datetime(2019, 11, 14, tzinfo=datetime.timezone.utc),
    catchup=False,
    tags=["paramill", "example"],
) as dag:

    @task
    def trips_data() -> str:
        """The example's synthetic trips (the real job would land the day's extract here)."""
        if not TRIPS.exists():
            script = BIKESHARE / "make_data.py"
            subprocess.run([sys.executable, str(script), "--out", str(TRIPS)], check=True)
        return str(TRIPS)

    report = NotebookOperator(
        task_id="daily_report",
        input_nb=str(BIKESHARE / "report.ipynb"),
        output_nb=str(BIKESHARE / "output" / "report_{{ ds }}.ipynb"),
        parameters={"date": "{{ ds }}", "data_path": "{{ ti.xcom_pull('trips_data') }}"},
        cwd=str(BIKESHARE),
        cell_timeout=300,
        run_timeout=1200,
        retries=1,
        retry_delay=datetime.timedelta(minutes=5),
    )

    trips_data() >> report
