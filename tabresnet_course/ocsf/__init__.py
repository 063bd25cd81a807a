"""The seeded OCSF 1.8.0 event generator: schema, simulated organisation, normal classes, attacks.

``schema`` holds the OCSF identifiers and the validator, ``world`` the simulated organisation,
``classes`` normal behaviour per event class, ``scenarios`` the injected attacks and ``generator``
puts them together (:func:`~tabresnet_course.ocsf.generator.generate_ocsf_events`,
:func:`~tabresnet_course.ocsf.generator.generate_baseline_and_evaluation`).

Chapter "The OCSF pipeline" teaches this package.
"""

__all__: list[str] = []  # the modules are the API: import from them
