"""``python -m evodiff_ray``: the same CLI as ``evodiff-ray``."""

import sys

from evodiff_ray.cli import main

sys.exit(main())
