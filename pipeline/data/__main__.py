"""python -m pipeline.data describe <dataset> [--root DIR]: split sizes and label counts."""

import sys

from pipeline.data.medpix import main

sys.exit(main())
