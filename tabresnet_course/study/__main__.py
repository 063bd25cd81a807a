"""``python -m tabresnet_course.study``: run the detection study from the command line."""

import sys

from tabresnet_course.study.report import main

sys.exit(main())
