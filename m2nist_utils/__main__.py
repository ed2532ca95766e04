"""Command line: ``python -m m2nist_utils generate ...`` (notebook 01) and ``evaluate ...`` (notebook 05).

Every failure a user can cause (a bad argument; a missing, damaged, foreign or hostile file; a folder that
cannot be written; a full disk; a request too large for memory) ends in exactly one line ``error: ...`` on
stderr that names the file or argument, with exit status 2, and leaves every file as it was. A genuine bug
still ends in a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from .arguments import number
from .files import check_folder_holds_only, check_folder_target

#: Peak bytes per pixel of ``generate``: images (1) + class maps (1) + one-hot masks (11), written in place.
GENERATE_BYTES_PER_PIXEL = 13


class UsageError(Exception):
    """A command line argparse refuses (unknown flag, missing or malformed argument)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # argparse's own error() prints the usage block first; the contract is one line.
        raise UsageError(message)


def _check_out(out: Path, force: bool) -> None:
    """Refuse an ``--out`` that cannot become the dataset folder, before any work is done."""
    check_folder_target(out, str(out))  # the pair is written into a temporary sibling folder
    if out.is_dir():
        check_folder_holds_only(out, ("combined.npy", "segmented.npy"), str(out), writer="generate")
        names = os.listdir(out)
        if names and not force:
            raise ValueError(
                f"{out}: already holds an M2NIST dataset ({sorted(names)[0]}); add --force to replace it"
            )


def _generate(args: argparse.Namespace) -> None:
    from . import arrays, m2nist, mnist

    out = Path(args.out)
    _check_out(out, args.force)
    arrays.check_memory(
        args.n_images * m2nist.HEIGHT * m2nist.WIDTH * GENERATE_BYTES_PER_PIXEL,
        f"--n-images {args.n_images} (images and 11-channel masks)",
    )
    pool = mnist.split_pools(args.source, seed=args.pool_seed)[args.split]
    if len(pool.images) < args.max_digits:
        raise ValueError(
            f"--max-digits {args.max_digits}: the {args.split} digit pool of source {args.source!r} holds "
            f"only {len(pool.images)} digits, and the digits of one image are all different"
        )
    clutter = m2nist.Clutter(args.clutter, args.clutter_size) if args.clutter else None
    images, class_maps, _ = m2nist.compose_images(
        pool, args.n_images, max_digits=args.max_digits, seed=args.seed, clutter=clutter
    )
    masks = m2nist.to_one_hot(class_maps)
    del class_maps
    existed = out.is_dir()
    try:
        m2nist.save_m2nist(out, images, masks)
    except OSError as exc:
        kept = "the old files are unchanged" if existed else "nothing was written"
        raise ValueError(f"{out}: could not write the dataset ({exc.strerror or exc}); {kept}") from exc
    cluttered = (
        f", {args.clutter} fragments of {args.clutter_size}x{args.clutter_size} each" if clutter else ""
    )
    print(
        f"wrote {len(images)} images from the {args.split} digit pool "
        f"({mnist.resolve_source(args.source)}{cluttered}) to {out}"
    )


def _evaluate(args: argparse.Namespace) -> None:
    from . import m2nist, metrics

    images, masks = m2nist.load_m2nist(args.data)
    predict, params = _load_predictor(args.model)
    tf = sys.modules.get("tensorflow")  # a frozen graph's errors are TensorFlow's; none on another backend
    op_error = tf.errors.OpError if tf is not None and hasattr(tf, "errors") else ()
    try:
        scores = metrics.evaluate_segmentation(predict, images, m2nist.to_class_map(masks), args.batch_size)
    except op_error as exc:
        from ._tf import error_line

        reason = error_line(exc.message, node=True)
        raise ValueError(f"{args.model}: the model failed while running ({reason})") from exc
    except ValueError as exc:
        raise ValueError(f"{args.model}: {exc}") from exc
    scores["params"] = params
    # NaN (a class absent from truth and prediction) is not JSON: write null.
    scores["per_class_iou"] = [None if v != v else round(v, 4) for v in scores["per_class_iou"]]
    for key in ("mean_iou", "background_iou", "digit_iou", "pixel_accuracy"):
        scores[key] = None if scores[key] != scores[key] else round(scores[key], 4)
    print(json.dumps(scores))


def _load_predictor(path: str):
    """(predict function, parameter count or None) for a ``.keras`` model or a frozen ``.pb`` graph."""
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


def _known_errors() -> tuple[type[BaseException], ...]:
    # Evaluated only when an exception is being matched, so TensorFlow is never imported just for this.
    known: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError, MemoryError)
    tf = sys.modules.get("tensorflow")
    return known + (tf.errors.OpError,) if tf is not None and hasattr(tf, "errors") else known


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from .mnist import SPLITS

    parser = _Parser(prog="python -m m2nist_utils", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write combined.npy and segmented.npy (public M2NIST format)")
    gen.add_argument("--out", required=True, help="folder to write into (created if missing)")
    gen.add_argument("--n-images", type=number(int, 1), required=True)
    gen.add_argument("--seed", type=number(int, 0), default=0, help="seed of the image composition")
    gen.add_argument(
        "--pool-seed", type=number(int, 0), default=0, help="seed of the train/val/test digit split"
    )
    gen.add_argument(
        "--source", default="auto", help="sample | keras | auto | PATH (mnist.npz or IDX folder)"
    )
    gen.add_argument("--split", default="train", choices=SPLITS, help="digit pool to draw from")
    gen.add_argument("--max-digits", type=number(int, 1, 6), default=3, help="1 to 6 digits per image")
    gen.add_argument(
        "--clutter",
        type=number(int, 0),
        default=0,
        help="fragments of other digits of the same pool on each image's background (0: none)",
    )
    gen.add_argument("--clutter-size", type=number(int, 1, 28), default=8, help="side of a fragment, pixels")
    gen.add_argument("--force", action="store_true", help="replace a dataset that --out already holds")
    gen.set_defaults(run=_generate)

    ev = sub.add_parser("evaluate", help="score a model on M2NIST files; prints one JSON object")
    ev.add_argument(
        "--model", required=True, help="a .keras model or a frozen .pb graph (image:0 -> probabilities:0)"
    )
    ev.add_argument("--data", required=True, help="folder with combined.npy and segmented.npy")
    ev.add_argument("--batch-size", type=number(int, 1), default=256)
    ev.set_defaults(run=_evaluate)
    from .distributed import add_train_parser  # the train command (imports TensorFlow only when it runs)

    add_train_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 after one ``error:`` line on stderr)."""
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line  # a warning is one line too (catch_warnings restores it)
        try:
            args = build_parser().parse_args(argv)
            args.run(args)
        except UsageError as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        except _known_errors() as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
