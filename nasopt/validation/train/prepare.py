"""Dataset preparation commands (``python -m nasopt.validation.train.prepare ...``).

``val-to-folders VAL_DIR GROUND_TRUTH [--synsets FILE] [--copy]``
    Move the official flat ILSVRC2012 validation images (``ILSVRC2012_val_00000001.JPEG`` ...) into
    ``VAL_DIR/<wnid>/``. The ground truth is one of: Kaggle's ``LOC_val_solution.csv``
    (``ImageId,PredictionString``); lines ``<file or image id> <wnid>``; or the devkit's
    ``ILSVRC2012_validation_ground_truth.txt`` (one class number 1-1000 per image, in file order) together
    with ``--synsets`` (the devkit's ``meta.mat``, or a text file with one wnid per line in class-number
    order).

``fashion-mnist OUT [--source DIR] [--size 32] [--train-per-class N] [--val-per-class N]``
    Convert Debian's ``dataset-fashion-mnist`` (``apt-get install -y dataset-fashion-mnist``; files in
    ``/usr/share/datasets/fashion-mnist``) into an RGB ImageFolder ``OUT/{train,val}/<class>/*.JPEG``.

``ffcv ROOT OUT [--max-resolution 400] [--jpeg-quality 90] [--write-mode jpg] [--workers N]``
    Write ``OUT/train.beton``, ``OUT/val.beton`` and ``OUT/ffcv.json`` from the ImageNet-layout folder
    ``ROOT`` for ``data.backend=ffcv data.root=OUT`` (the dataset's settings: every image JPEG at quality 90,
    longer side at most 400 px; see :mod:`nasopt.validation.train.ffcv_data`). Needs the ``train-ffcv`` extra.
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.errors import NasoptError
from nasopt.validation.train.data import DataLayoutError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "tshirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
)
_WNID = re.compile(r"n\d{8}")
_VAL_ID = re.compile(r"(ILSVRC2012_val_\d{8})")


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (``.gz`` or not) as a uint8 array ``(n, ...)``."""
    if path.suffix == ".gz":
        with gzip.open(path) as fh:
            raw = fh.read()
    else:
        raw = path.read_bytes()
    if len(raw) < 4 or raw[2] != 0x08:
        raise DataLayoutError(f"{path}: not an IDX file of unsigned bytes (the MNIST format)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_folder(
    out: str | Path,
    source: str | Path = FASHION_MNIST_DIR,
    *,
    size: int = 32,
    train_per_class: int | None = 100,
    val_per_class: int | None = 50,
    quality: int = 95,
) -> Path:
    """Write ``out/{train,val}/<class>/<i>.JPEG``: the first ``*_per_class`` images of each class (None =
    all), grey 28 px upsampled (bicubic) to ``size`` px RGB. Returns ``out``."""
    from PIL import Image

    src = Path(source)
    files = {"train": "train", "val": "t10k"}
    missing = [
        src / f"{p}-{k}-idx{'3' if k == 'images' else '1'}-ubyte.gz"
        for p in files.values()
        for k in ("images", "labels")
    ]
    missing = [p for p in missing if not p.is_file()]
    if missing:
        raise DataLayoutError(
            f"{missing[0]}: not found; install Debian's Fashion-MNIST (apt-get install -y "
            f"dataset-fashion-mnist) or pass the folder holding its *-idx*-ubyte.gz files"
        )
    out = Path(out)
    for split, prefix in files.items():
        images = _read_idx(src / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(src / f"{prefix}-labels-idx1-ubyte.gz")
        limit = train_per_class if split == "train" else val_per_class
        for c, name in enumerate(FASHION_MNIST_CLASSES):
            idx = np.flatnonzero(labels == c)
            if limit is not None:
                idx = idx[:limit]
            d = out / split / f"{c}_{name}"
            d.mkdir(parents=True, exist_ok=True)
            for i in idx:
                img = Image.fromarray(images[i], mode="L").resize((size, size), Image.Resampling.BICUBIC)
                img.convert("RGB").save(d / f"{prefix}_{i:05d}.JPEG", quality=quality)
    return out


def _synsets(path: Path) -> list[str]:
    if path.suffix == ".mat":
        from scipy.io import loadmat

        meta = loadmat(str(path), squeeze_me=True)["synsets"]
        by_id = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in meta}
        return [by_id[i] for i in range(1, 1001)]
    names = [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()]
    if not names or not all(_WNID.fullmatch(n) for n in names):
        raise DataLayoutError(
            f"{path}: expected one WordNet id (n01440764 ...) per line, or the devkit's meta.mat"
        )
    return names


def read_ground_truth(
    path: str | Path, images: Sequence[str], synsets: str | Path | None = None
) -> dict[str, str]:
    """``{image file name: wnid}`` for the flat validation ``images`` (sorted file names)."""
    p = Path(path)
    lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    by_id = {m.group(1): f for f in images if (m := _VAL_ID.search(f))}
    out: dict[str, str] = {}
    if lines and all(ln.isdigit() for ln in lines):  # devkit: class numbers in image order
        if synsets is None:
            raise DataLayoutError(f"{p}: holds class numbers; pass --synsets <devkit meta.mat or wnid list>")
        names = _synsets(Path(synsets))
        if len(lines) != len(images):
            raise DataLayoutError(
                f"{p}: {len(lines)} labels for {len(images)} images; expected one per image"
            )
        for f, ln in zip(sorted(images), lines, strict=True):
            k = int(ln)
            if not 1 <= k <= len(names):
                raise DataLayoutError(f"{p}: class number {k} outside 1..{len(names)} of {synsets}")
            out[f] = names[k - 1]
        return out
    for ln in lines:
        if ln.lower().startswith("imageid"):
            continue
        parts = re.split(r"[,\s]+", ln)
        key, wnid = parts[0], next((x for x in parts[1:] if _WNID.fullmatch(x)), None)
        if wnid is None:
            raise DataLayoutError(
                f"{p}: line {ln[:60]!r} names no WordNet id; expected '<image> <wnid>' lines "
                f"or LOC_val_solution.csv"
            )
        m = _VAL_ID.search(key)
        found = by_id.get(m.group(1)) if m else None
        if found is None and key in images:
            found = key
        if found is not None:
            out[found] = wnid
    return out


def val_to_folders(
    val_dir: str | Path, ground_truth: str | Path, synsets: str | Path | None = None, *, copy: bool = False
) -> int:
    """Move (or copy) the flat images of ``val_dir`` into ``val_dir/<wnid>/``; returns how many. Every
    image must have a label (checked before anything moves)."""
    d = Path(val_dir)
    if not d.is_dir():
        raise DataLayoutError(f"{d}: no such folder; expected the flat ILSVRC2012 validation folder")
    images = sorted(
        p.name for p in d.iterdir() if p.is_file() and p.suffix.lower() in (".jpeg", ".jpg", ".png")
    )
    if not images:
        raise DataLayoutError(f"{d}: no loose images to sort (already in class folders?)")
    labels = read_ground_truth(ground_truth, images, synsets)
    unlabelled = [f for f in images if f not in labels]
    if unlabelled:
        raise DataLayoutError(
            f"{ground_truth}: no label for {len(unlabelled)} image(s) of {d}, e.g. {unlabelled[0]}"
        )
    for f in images:
        target = d / labels[f]
        target.mkdir(exist_ok=True)
        (shutil.copy2 if copy else shutil.move)(str(d / f), str(target / f))
    return len(images)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring); errors are one line, exit status 2."""
    ap = argparse.ArgumentParser(prog="python -m nasopt.validation.train.prepare")
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("val-to-folders", help="sort the flat ILSVRC2012 val folder into class folders")
    v.add_argument("val_dir")
    v.add_argument("ground_truth")
    v.add_argument("--synsets", default=None)
    v.add_argument("--copy", action="store_true")
    f = sub.add_parser("fashion-mnist", help="Debian's Fashion-MNIST as an RGB ImageFolder")
    f.add_argument("out")
    f.add_argument("--source", default=str(FASHION_MNIST_DIR))
    f.add_argument("--size", type=int, default=32)
    f.add_argument("--train-per-class", type=int, default=None)
    f.add_argument("--val-per-class", type=int, default=None)
    w = sub.add_parser("ffcv", help="FFCV .beton files (data.backend=ffcv) of an ImageNet-layout folder")
    w.add_argument("root")
    w.add_argument("out")
    w.add_argument("--max-resolution", type=int, default=400)
    w.add_argument("--jpeg-quality", type=int, default=90)
    w.add_argument("--write-mode", default="jpg", help="jpg (default), proportion, raw or smart")
    w.add_argument("--compress-probability", type=float, default=0.5, help="for --write-mode proportion")
    w.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "ffcv":
            from nasopt.validation.train.ffcv_data import FieldSettings, write_ffcv

            settings = FieldSettings(
                args.max_resolution, args.jpeg_quality, args.write_mode, args.compress_probability
            )
            out = write_ffcv(args.root, args.out, settings, workers=args.workers)
            print(f"wrote {out}/train.beton, {out}/val.beton and {out}/ffcv.json")
        elif args.cmd == "val-to-folders":
            n = val_to_folders(args.val_dir, args.ground_truth, args.synsets, copy=args.copy)
            print(f"sorted {n} images into class folders of {args.val_dir}")
        else:
            out = fashion_mnist_folder(
                args.out,
                args.source,
                size=args.size,
                train_per_class=args.train_per_class,
                val_per_class=args.val_per_class,
            )
            print(f"wrote {out}/train and {out}/val")
    except NasoptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
