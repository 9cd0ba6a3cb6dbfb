"""``paramill serve``: a folder of parameterized notebooks as a web app and a JSON API.

Layout: ``command`` (the click command, imports nothing heavy), ``app`` (FastAPI routes and
pages), ``store`` (run history in SQLAlchemy: SQLite by default, PostgreSQL for several server
processes), ``notebooks`` (discovering notebooks, their parameters, checking submitted values),
``service`` (workers that claim queued runs and execute them), ``runner`` (the one adapter to
paramill's run API), ``charts`` (small SVG charts). Needs ``pip install paramill[serve]``.
"""
