"""Anomaly detection on top of a trained encoder: scorers, the saved detector, explanations.

``scorers`` holds every scorer behind one ``fit(reference)`` / ``score(query)`` contract,
``surprisal`` scores by masked-feature-prediction surprisal, ``detector`` trains and saves the
OCSF anomaly detector, ``explain`` explains its scores field by field.

Chapters "The OCSF pipeline" and "Explaining alerts" teach this package.
"""

__all__: list[str] = []  # the modules are the API: import from them
