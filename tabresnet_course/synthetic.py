"""A small synthetic event table whose hidden structure is known, for the method chapters.

Each event comes from one of four hidden behaviour profiles (interactive logins, service API
calls, bulk transfers, DNS lookups). The profile shifts the byte counts, the duration and the
hour of day and makes some categorical values more likely; within a profile a hidden "size"
moves bytes in, bytes out and duration together. The profiles overlap on purpose. Chapters
"Contrastive learning" and "Masked feature prediction" train on this table and use the profile
only afterwards, to check what the embeddings recovered. For OCSF events see
:mod:`tabresnet_course.ocsf.generator`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORICAL_COLUMNS",
    "NUMERICAL_COLUMNS",
    "PROFILES",
    "VOCABULARIES",
    "make_profile_events",
]

PROFILES = ["interactive login", "service API call", "bulk transfer", "DNS lookup"]
VOCABULARIES = {
    "activity": ["logon", "api_call", "file_upload", "dns_query", "logoff"],
    "protocol": ["kerberos", "https", "smb", "dns"],
    "dst_port": ["88", "443", "445", "53", "22", "3389", "8080", "25"],
    "user_type": ["human", "service", "admin"],
    "status": ["success", "failure"],
}
NUMERICAL_COLUMNS = ["log_bytes_in", "log_bytes_out", "log_duration", "hour_sin", "hour_cos"]
CATEGORICAL_COLUMNS = list(VOCABULARIES)

# Per-profile centres, in profile order.
TYPICAL_HOUR = np.array([10.0, 3.0, 22.0, 14.0])
TYPICAL_LOG_BYTES_IN = np.array([7.0, 7.8, 9.0, 6.2])
TYPICAL_LOG_BYTES_OUT = np.array([7.5, 8.6, 9.8, 6.4])
TYPICAL_LOG_DURATION = np.array([0.5, 0.0, 1.2, -0.6])
PREFERRED_CODE = {
    "activity": [0, 1, 2, 3],
    "protocol": [0, 1, 2, 3],
    "dst_port": [0, 1, 2, 3],
    "user_type": [0, 1, 1, 2],
}


def make_profile_events(num_events: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Draw ``num_events`` synthetic events; returns ``(table, profile index per event)``.

    ``status`` is a failure 10% of the time whatever the profile; every other categorical column
    takes its profile's preferred value 45% of the time and a uniform draw otherwise.
    """
    rng = np.random.default_rng(seed)
    profile = rng.integers(0, len(PROFILES), num_events)
    size = rng.normal(size=num_events)  # shared hidden factor within a profile
    hour = (TYPICAL_HOUR[profile] + rng.normal(0, 4.0, num_events)) % 24
    table = pd.DataFrame(
        {
            "log_bytes_in": TYPICAL_LOG_BYTES_IN[profile] + 0.8 * size + rng.normal(0, 0.4, num_events),
            "log_bytes_out": TYPICAL_LOG_BYTES_OUT[profile] + 0.8 * size + rng.normal(0, 0.4, num_events),
            "log_duration": TYPICAL_LOG_DURATION[profile] + 0.6 * size + rng.normal(0, 0.5, num_events),
            "hour_sin": np.sin(2 * np.pi * hour / 24),
            "hour_cos": np.cos(2 * np.pi * hour / 24),
        }
    )
    for column, vocabulary in VOCABULARIES.items():
        if column == "status":
            code = (rng.random(num_events) < 0.1).astype(int)
        else:
            uniform = rng.integers(0, len(vocabulary), num_events)
            preferred = np.array(PREFERRED_CODE[column])[profile]
            code = np.where(rng.random(num_events) < 0.45, preferred, uniform)
        table[column] = np.array(vocabulary)[code]
    return table, profile
