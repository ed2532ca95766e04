"""Command line: ``python -m m2nist_utils generate ...`` (notebook 01) and ``evaluate ...`` (notebook 05)."""

from __future__ import annotations

import argparse
import sys


def _generate(args: argparse.Namespace) -> None:
    from . import m2nist, mnist

    pool = mnist.split_pools(args.source, seed=args.pool_seed)[args.split]
    images, class_maps, _ = m2nist.compose_images(
        pool, args.n_images, max_digits=args.max_digits, seed=args.seed
    )
    m2nist.save_m2nist(args.out, images, m2nist.to_one_hot(class_maps))
    print(
        f"wrote {len(images)} images from the {args.split} digit pool "
        f"({mnist.resolve_source(args.source)}) to {args.out}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m2nist_utils", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write combined.npy and segmented.npy (public M2NIST format)")
    gen.add_argument("--out", required=True, help="folder to write into (created if missing)")
    gen.add_argument("--n-images", type=int, required=True)
    gen.add_argument("--seed", type=int, default=0, help="seed of the image composition")
    gen.add_argument("--pool-seed", type=int, default=0, help="seed of the train/val/test digit split")
    gen.add_argument(
        "--source", default="auto", help="sample | keras | auto | PATH (mnist.npz or IDX folder)"
    )
    gen.add_argument(
        "--split", default="train", choices=["train", "val", "test"], help="digit pool to draw from"
    )
    gen.add_argument("--max-digits", type=int, default=3)
    gen.set_defaults(run=_generate)

    args = parser.parse_args(argv)
    if getattr(args, "n_images", 1) < 1:
        parser.error("--n-images must be at least 1")
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
