"""The seeded detection study: a grid of data seeds, training seeds and settings, run and summarised.

Run it with ``python -m tabresnet_course.study --grid default --out DIR``.

Chapter "The OCSF pipeline" reads its committed results.
"""

__all__: list[str] = []  # the modules are the API: import from them
