"""Image folders: decoding, centre crop, CelebA's torchvision layout and official split, seeded splits of plain
folders, ImageFolder labels, errors, and prepare end to end. All images are generated with PIL into tmp folders."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pae.config import data_spec, resolve
from pae.data.images import crop_box, list_images, load_image, load_images, scan_image_folder
from pae.data.sources import TEST_FRACTION, load_raw
from pae.data.store import open_dataset, write_dataset
from pae.io import PaeError
from tests.helpers import run_pae, write_celeba, write_images, write_mnist_folder

RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    write_celeba(root)
    return root


# ----------------------------------------------------------------------------------------------------- decoding

def test_load_images_shapes_dtype_and_threads_agree(tmp_path):
    paths = write_images(tmp_path, 30)
    one = load_images(paths, workers=1)
    assert one.shape == (30, 3, 64, 64) and one.dtype == np.uint8
    np.testing.assert_array_equal(load_images(paths, workers=3), one)
    assert load_images(paths[:4], size=32, workers=2).shape == (4, 3, 32, 32)


def test_centre_crop_keeps_the_central_square_and_cuts_the_border(tmp_path):
    """A 178x218 red image with a blue 140x140 square at its centre: CelebA's crop leaves only blue; the default
    crop (shorter side, 178) keeps red at the left and right."""
    img = Image.new("RGB", (178, 218), RED)
    left, top, right, bottom = crop_box(178, 218, 140)
    assert (left, top, right, bottom) == (19, 39, 159, 179)
    img.paste(BLUE, (left, top, right, bottom))
    img.save(tmp_path / "pattern.png")
    out = load_image(tmp_path / "pattern.png", 64, crop=140)
    assert (out.reshape(3, -1).T == BLUE).all()
    wide = load_image(tmp_path / "pattern.png", 64)
    assert tuple(wide[:, 32, 1]) == RED and tuple(wide[:, 32, 62]) == RED and tuple(wide[:, 32, 32]) == BLUE


def test_crop_matches_torchvision_center_crop_and_resize(tmp_path):
    import torchvision.transforms.v2.functional as F

    for i, (w, h, crop, size) in enumerate([(178, 218, 140, 64), (101, 77, None, 32), (40, 30, 140, 64)]):
        path = write_images(tmp_path, 1, size=(w, h), fmt="png", seed=i, names=[f"{i}.png"])[0]
        side = min(w, h) if crop is None else min(crop, w, h)  # a crop larger than the image is clamped
        ref = F.resize(F.center_crop(Image.open(path).convert("RGB"), [side, side]), [size, size])
        np.testing.assert_array_equal(load_image(path, size, crop), np.asarray(ref).transpose(2, 0, 1))


def test_grayscale_and_palette_images_become_rgb(tmp_path):
    grey = write_images(tmp_path, 3, size=(50, 60), fmt="png", mode="L")
    Image.new("P", (20, 20)).save(tmp_path / "palette.gif")
    out = load_images(grey + [tmp_path / "palette.gif"], size=16, workers=2)
    assert out.shape == (4, 3, 16, 16)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    np.testing.assert_array_equal(out[:, 0], out[:, 2])


@pytest.mark.parametrize("content", [b"this is not a jpeg", "truncated"])
def test_corrupt_image_names_the_file(tmp_path, content):
    paths = write_images(tmp_path, 6)
    if content == "truncated":
        content = paths[3].read_bytes()[:600]
    paths[3].write_bytes(content)
    for workers in (1, 2):
        with pytest.raises(PaeError, match="000004.jpg: cannot read image"):
            load_images(paths, workers=workers)


def test_empty_folder_names_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(PaeError, match=r"empty: no image files"):
        list_images(tmp_path / "empty")
    with pytest.raises(PaeError, match=r"empty: no image files"):
        load_raw("image_folder", str(tmp_path / "empty"))
    with pytest.raises(PaeError, match="not a folder"):
        load_raw("image_folder", str(tmp_path / "absent"))


# ------------------------------------------------------------------------------------------------------- CelebA

@pytest.mark.parametrize("where", ["root", "celeba", "auto"])
def test_celeba_official_partition(celeba_root, where):
    source = {"root": str(celeba_root), "celeba": str(celeba_root / "celeba"), "auto": "auto"}[where]
    raw = load_raw("celeba", source, download_root=celeba_root, image_size=32)
    assert raw.source == "celeba-official" and raw.classes == ["face"]
    assert raw.train_images.shape == (14, 3, 32, 32) and raw.test_images.shape == (6, 3, 32, 32)
    assert raw.train_images.dtype == np.uint8
    assert not raw.train_labels.any() and not raw.test_labels.any() and raw.train_labels.dtype == np.int64
    folder = celeba_root / "celeba" / "img_align_celeba"
    np.testing.assert_array_equal(raw.test_images[0], load_image(folder / "000015.jpg", 32, crop=140))
    np.testing.assert_array_equal(raw.train_images[-1], load_image(folder / "000014.jpg", 32, crop=140))
    assert "10 train + 4 valid" in raw.detail and "6 test" in raw.detail


def test_celeba_partition_order_need_not_be_contiguous(tmp_path):
    partition = write_celeba(tmp_path, parts=(3, 1, 2))
    text = (tmp_path / "celeba" / "list_eval_partition.txt").read_text().replace("000001.jpg 0", "000001.jpg 2")
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text(text)
    raw = load_raw("celeba", str(tmp_path), image_size=16)
    assert partition[0] == 0 and len(raw.train_images) == 3 and len(raw.test_images) == 3  # 000001 moved to test
    np.testing.assert_array_equal(raw.test_images[0],
                                  load_image(tmp_path / "celeba" / "img_align_celeba" / "000001.jpg", 16, crop=140))


def test_celeba_partition_errors(tmp_path):
    write_celeba(tmp_path)
    part = tmp_path / "celeba" / "list_eval_partition.txt"
    part.write_text(part.read_text() + "000099.jpg 2\n")
    with pytest.raises(PaeError, match=r"1 of the 21 images listed in list_eval_partition.txt are missing"):
        load_raw("celeba", str(tmp_path))
    part.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(PaeError, match=r"list_eval_partition.txt:2: expected 'FILE PARTITION'"):
        load_raw("celeba", str(tmp_path))
    part.unlink()
    with pytest.raises(PaeError, match=r"list_eval_partition.txt: missing.*img_align_celeba"):
        load_raw("celeba", str(tmp_path))


def test_celeba_auto_without_files_says_where_to_put_them(tmp_path):
    with pytest.raises(PaeError) as e:
        load_raw("celeba", "auto", download_root=tmp_path / "raw")
    message = str(e.value)
    assert str(tmp_path / "raw" / "celeba" / "img_align_celeba") in message
    assert str(tmp_path / "raw" / "celeba" / "list_eval_partition.txt") in message
    assert "Google Drive" in message and "datasets.celeba.source" in message


def test_celeba_plain_folder_seeded_split(tmp_path):
    write_images(tmp_path / "faces", 30)
    raw = load_raw("celeba", str(tmp_path / "faces"), image_size=16)
    n_test = round(30 * TEST_FRACTION)
    assert raw.source == "celeba-folder" and raw.classes == ["face"]
    assert raw.train_images.shape == (30 - n_test, 3, 16, 16) and raw.test_images.shape == (n_test, 3, 16, 16)
    again = load_raw("celeba", str(tmp_path / "faces"), image_size=16)
    np.testing.assert_array_equal(again.test_images, raw.test_images)  # the split is seeded
    every = load_images(list_images(tmp_path / "faces"), 16, crop=140)
    both = np.concatenate([raw.train_images, raw.test_images])
    assert sorted(map(bytes, both)) == sorted(map(bytes, every))  # a partition of all the images


# ------------------------------------------------------------------------------------------------- image_folder

def test_image_folder_classes_from_sorted_subfolders(tmp_path):
    for seed, (name, n) in enumerate([("dog", 4), ("ant", 3), ("cat", 5)]):
        write_images(tmp_path / "set" / name, n, size=(40, 30), fmt="png", seed=seed)
    write_images(tmp_path / "set" / "cat" / "nested", 1, size=(40, 30), seed=9)  # found recursively
    (tmp_path / "set" / ".hidden").mkdir()
    files, labels, classes = scan_image_folder(tmp_path / "set")
    assert classes == ["ant", "cat", "dog"]
    assert np.bincount(labels).tolist() == [3, 6, 4] and len(files) == 13
    assert all(f.parent.name == classes[label] or f.parent.name == "nested" for f, label in zip(files, labels))
    raw = load_raw("image_folder", str(tmp_path / "set"), image_size=24)
    assert raw.source == "image-folder" and raw.classes == classes
    assert raw.train_images.shape[1:] == (3, 24, 24) and len(raw.train_images) + len(raw.test_images) == 13
    assert len(raw.test_images) == round(13 * TEST_FRACTION)
    assert sorted(np.concatenate([raw.train_labels, raw.test_labels]).tolist()) == sorted(labels.tolist())


def test_image_folder_flat_gets_label_zero(tmp_path):
    write_images(tmp_path / "flat", 12, size=(30, 40), fmt="png")
    raw = load_raw("image_folder", str(tmp_path / "flat"), image_size=8)
    assert raw.classes == ["image"] and not raw.train_labels.any() and raw.train_images.shape[1:] == (3, 8, 8)


def test_image_folder_errors(tmp_path):
    with pytest.raises(PaeError, match=r"datasets\.image_folder\.source"):
        load_raw("image_folder", "auto")
    write_images(tmp_path / "mixed" / "a", 2, size=(8, 8))
    write_images(tmp_path / "mixed", 1, size=(8, 8))
    with pytest.raises(PaeError, match="both image files"):
        load_raw("image_folder", str(tmp_path / "mixed"))
    write_images(tmp_path / "classes" / "a", 2, size=(8, 8))
    (tmp_path / "classes" / "b").mkdir()
    with pytest.raises(PaeError, match=r"classes/b: no image files"):
        load_raw("image_folder", str(tmp_path / "classes"))
    write_images(tmp_path / "one", 1, size=(8, 8))
    with pytest.raises(PaeError, match="at least 2 images"):
        load_raw("image_folder", str(tmp_path / "one"))


def test_mnist_ignores_image_size(tmp_path):
    write_mnist_folder(tmp_path / "mnist")
    raw = load_raw("mnist", str(tmp_path / "mnist"), image_size=32)
    assert raw.train_images.shape == (12, 1, 6, 7)


def test_config_accepts_the_new_datasets(tmp_path):
    write_images(tmp_path / "x", 2, fmt="png")  # the source folder must exist and hold images (pae/data/paths.py)
    cfg = resolve({"datasets": {"celeba": {}, "image_folder": {"source": str(tmp_path / "x"), "image_size": 32}}})
    assert cfg["datasets"]["celeba"]["image_size"] == 64 and cfg["datasets"]["image_folder"]["image_size"] == 32
    with pytest.raises(PaeError, match="image_size"):
        resolve({"datasets": {"celeba": {"image_size": 0}}})


def test_data_spec_leaves_image_size_out_of_the_mnist_type_datasets():
    """The workflow names and reruns prepared files by this spec: adding image_size must not redo MNIST's."""
    cfg = resolve({"datasets": {"mnist": {"limit_train": 10}, "celeba": {}}})
    assert "image_size" not in data_spec("mnist", cfg["datasets"]["mnist"])
    assert data_spec("mnist", cfg["datasets"]["mnist"])["limit_train"] == 10
    assert data_spec("celeba", cfg["datasets"]["celeba"]) == cfg["datasets"]["celeba"]


# --------------------------------------------------------------------------------------------------- end to end

def test_celeba_store_round_trip(celeba_root, tmp_path):
    raw = load_raw("celeba", str(celeba_root), image_size=32)
    write_dataset(tmp_path / "celeba.h5", "celeba", raw, val_size=3, split_seed=0)
    data = open_dataset(tmp_path / "celeba.h5")
    assert data.image_shape == (3, 32, 32) and data.attrs["classes"] == ["face"]
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [11, 3, 6]
    np.testing.assert_array_equal(data.split("test")[0].numpy(), raw.test_images)


def test_prepare_celeba_subprocess(celeba_root, tmp_path):
    spec = {"source": str(celeba_root), "val_size": 4, "split_seed": 1, "image_size": 16, "limit_test": 5}
    out = tmp_path / "celeba.h5"
    proc = run_pae("prepare", "--dataset", "celeba", "--spec", json.dumps(spec), "--out", out,
                   "--download-root", tmp_path / "raw")
    data = open_dataset(out)
    assert data.image_shape == (3, 16, 16) and data.attrs["source"] == "celeba-official"
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [10, 4, 5]
    assert "decoding images" in proc.stderr  # the progress line
