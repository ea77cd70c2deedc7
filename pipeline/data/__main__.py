"""python -m pipeline.data describe <dataset> [--root DIR] [--skip-images]: split sizes and label
counts of a MedPix-format or a ChestX-ray14-format (format: chestxray) dataset."""

import sys

from pipeline.data.medpix import main

sys.exit(main())
