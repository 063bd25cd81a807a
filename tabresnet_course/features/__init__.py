"""From a flat table of OCSF events to named numerical and categorical features.

``spec`` declares the features (:class:`~tabresnet_course.features.spec.FeatureSpec`) and computes
them with the column ``transforms``, ``inference`` infers a spec for a foreign export, ``rates``
adds causal per-entity rates.

Chapter "The OCSF pipeline" teaches this package.
"""

__all__: list[str] = []  # the modules are the API: import from them
