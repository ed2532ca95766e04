"""Command line: ``python -m m2nist_utils generate ...`` (notebook 01) and ``evaluate ...`` (notebook 05)."""

from __future__ import annotations

import argparse
import json
import sys


def _generate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from . import m2nist, mnist

    existing = [name for name in ("combined.npy", "segmented.npy") if (Path(args.out) / name).exists()]
    if existing and not args.force:
        raise ValueError(
            f"{args.out}: already holds an M2NIST dataset ({existing[0]}); add --force to replace it"
        )
    pool = mnist.split_pools(args.source, seed=args.pool_seed)[args.split]
    images, class_maps, _ = m2nist.compose_images(
        pool, args.n_images, max_digits=args.max_digits, seed=args.seed
    )
    m2nist.save_m2nist(args.out, images, m2nist.to_one_hot(class_maps))
    print(
        f"wrote {len(images)} images from the {args.split} digit pool "
        f"({mnist.resolve_source(args.source)}) to {args.out}"
    )


def _evaluate(args: argparse.Namespace) -> None:
    from . import m2nist, metrics

    images, masks = m2nist.load_m2nist(args.data)
    predict, params = _load_predictor(args.model)
    scores = metrics.evaluate_segmentation(predict, images, m2nist.to_class_map(masks), args.batch_size)
    scores["params"] = params
    # NaN (a class absent from truth and prediction) is not JSON: write null.
    scores["per_class_iou"] = [None if v != v else round(v, 4) for v in scores["per_class_iou"]]
    for key in ("mean_iou", "background_iou", "digit_iou", "pixel_accuracy"):
        scores[key] = None if scores[key] != scores[key] else round(scores[key], 4)
    print(json.dumps(scores))


def _load_predictor(path: str):
    """(predict function, parameter count or None) for a ``.keras`` model or a frozen ``.pb`` graph."""
    from pathlib import Path

    if Path(path).suffix == ".pb":
        from . import freeze

        graph_def = freeze.read_graph_def(path)
        return freeze.load_frozen_graph(path, "image", "probabilities", input_shape=(64, 84, 1)), (
            freeze.count_parameters(graph_def)
        )
    if Path(path).suffix == ".keras":
        from . import artifacts

        model = artifacts.load_model(path)
        if tuple(model.input_shape[1:]) not in ((64, 84, 1), (None, None, 1)):
            raise ValueError(f"{path}: the model takes input {model.input_shape}; expected (None, 64, 84, 1)")
        return (lambda x: model(x, training=False)), int(model.count_params())
    raise ValueError(f"{path}: expected a .keras model or a frozen .pb graph")


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
    gen.add_argument("--force", action="store_true", help="replace a dataset that --out already holds")
    gen.set_defaults(run=_generate)

    ev = sub.add_parser("evaluate", help="score a model on M2NIST files; prints one JSON object")
    ev.add_argument(
        "--model", required=True, help="a .keras model or a frozen .pb graph (image:0 -> probabilities:0)"
    )
    ev.add_argument("--data", required=True, help="folder with combined.npy and segmented.npy")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.set_defaults(run=_evaluate)

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
