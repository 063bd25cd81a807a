"""``python -m tabresnet_course``: the same command line as ``tabresnet-course``."""

from tabresnet_course.cli import main

raise SystemExit(main())
