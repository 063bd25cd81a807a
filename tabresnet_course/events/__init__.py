"""OCSF events in and out: files (JSON Lines, JSON arrays, Parquet) and the flat table of dotted columns.

``files`` reads and writes events with a report of every record it skipped; ``flat`` turns nested
events into one flat table and back. Nothing here knows about the generator.

Chapter "The OCSF pipeline" teaches this package.
"""

__all__: list[str] = []  # the modules are the API: import from them
