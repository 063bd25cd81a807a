"""The seeded OCSF 1.8.0 event generator: schema, simulated organisation, normal classes, attacks.

``schema`` holds the OCSF identifiers and the validator, ``profiles`` what differs between the
simulated organisations, ``world`` the organisation's users, ``classes`` normal behaviour per
event class, ``scenarios`` the injected attacks and ``generator`` puts them together
(:func:`~tabresnet_course.ocsf.generator.generate_ocsf_events`,
:func:`~tabresnet_course.ocsf.generator.generate_baseline_and_evaluation`); ``contamination``
builds baselines that already hold attacks
(:func:`~tabresnet_course.ocsf.contamination.contaminated_split`).

Chapter "The OCSF pipeline" teaches this package.
"""

__all__: list[str] = []  # the modules are the API: import from them
