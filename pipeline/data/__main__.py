"""python -m pipeline.data describe <dataset> [--root DIR] [--skip-images]: split sizes and label
counts of a MedPix-format, CSV-format or ChestX-ray14-format (format: chestxray) dataset.

python -m pipeline.data split <dataset> [--root DIR] [--by COLUMN] [--fractions T D V] [--seed S]
[--force]: a `format: csv` dataset's metadata_{train,dev,test}.csv from its metadata.csv, the
research group's way (pipeline.data.splitter).

The CLI lives here, above both readers, rather than in pipeline.data.medpix: it dispatches to
`medpix.describe` or `chestxray.describe` by the dataset's format, and chestxray builds on
medpix's samples, so in medpix it made the two readers import each other.
"""

from __future__ import annotations

import argparse
import sys

from core.errors import KdsweepError
from pipeline.data.medpix import describe
from pipeline.data.splitter import DEFAULT_FRACTIONS, DEFAULT_SEED, split_table


def main(argv: list[str] | None = None) -> int:
    """The `describe` command; the exit status (2: a one-line error on stderr)."""
    from pipeline.config.loader import load_dataset_config

    parser = argparse.ArgumentParser(
        prog="python -m pipeline.data",
        description="Datasets on disk: split sizes and label counts; the group's split of a CSV table.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser(
        "describe",
        help="print split sizes and label counts",
        description="MedPix-format datasets: samples, cases, text lengths and class counts per split. "
        "ChestX-ray14-format datasets (format: chestxray): images, patients, No Finding share and "
        "labels per image per split (train, the val carve-out, test), positives and prevalence "
        "per label, and the subset's share when `subset` is set.",
    )
    d.add_argument("dataset", help="a dataset name under sweeps/datasets")
    d.add_argument("--root", help="dataset root (default: from the dataset YAML)")
    d.add_argument(
        "--skip-images",
        action="store_true",
        help="format: chestxray only: do not require the image files (the NIH label table ships without them)",
    )
    d.add_argument("overrides", nargs="*", help="key=value overrides of the dataset config")
    sp = sub.add_parser(
        "split",
        help="write a csv dataset's split tables from its whole table",
        description="format: csv datasets: metadata_{train,dev,test}.csv from metadata.csv (names from the "
        "dataset's `table` section) as the research group splits: scikit-learn train_test_split, "
        "stratified, train first, then the rest into dev and test. Prints the label counts per split.",
    )
    sp.add_argument("dataset", help="a dataset name under sweeps/datasets (format: csv)")
    sp.add_argument("--root", help="dataset root (default: from the dataset YAML)")
    sp.add_argument("--by", help="the column to stratify by (default: the first task's column, e.g. type)")
    sp.add_argument(
        "--fractions", nargs=3, type=float, default=list(DEFAULT_FRACTIONS), metavar=("TRAIN", "DEV", "TEST")
    )
    sp.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random_state of both draws (default 42)")
    sp.add_argument("--force", action="store_true", help="overwrite split files that exist")
    sp.add_argument("overrides", nargs="*", help="key=value overrides of the dataset config")
    # parse_known_args: overrides may also follow --root (argparse ends nargs="*" at an option)
    args, extra = parser.parse_known_args(argv)
    if any(x.startswith("-") or "=" not in x for x in extra):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        overrides = [*args.overrides, *extra] + ([f"root={args.root}"] if args.root else [])
        cfg = load_dataset_config(args.dataset, overrides)
        if args.command == "split":
            text = split_table(cfg, args.by, tuple(args.fractions), args.seed, args.force)
        elif cfg.format == "chestxray":
            from pipeline.data.chestxray import describe as describe_chestxray

            text = describe_chestxray(cfg, check_images=not args.skip_images)
        elif args.skip_images:
            parser.error(
                f"--skip-images: dataset {cfg.name!r} is format {cfg.format}; only format chestxray can skip images"
            )
        else:
            text = describe(cfg)
    except KdsweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
