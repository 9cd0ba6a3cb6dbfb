"""Adapters that run paramill inside schedulers (Airflow, ...).

Each integration lives in its own subpackage and imports its framework only when used, so
``import paramill`` never pulls in Airflow.
"""
