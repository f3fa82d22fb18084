"""Dataset readers: the real layouts, label mapping, and one-line errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from surgery.eval.datasets import (
    CITYSCAPES_TRAIN_IDS,
    open_dataset,
    read_cityscapes_label,
    read_ids,
    upstream_split,
)
from surgery.eval.errors import DatasetError


def test_cityscapes_layout_is_sorted_and_labels_map_to_train_ids(datasets):
    ds = open_dataset("cityscapes", datasets["cityscapes"])
    assert ds.labels == "labelIds" and ds.synthetic and len(ds.samples) == 3
    ids = [s.id for s in ds.samples]
    assert ids == sorted(ids, key=lambda i: (i.split("_")[0], i)) and ids[0].endswith("_leftImg8bit")
    sample = ds.samples[0]
    from_ids = ds.read_label(sample)
    trainids = np.asarray(Image.open(str(sample.label).replace("labelIds", "labelTrainIds")))
    np.testing.assert_array_equal(from_ids, trainids)
    assert from_ids.dtype == np.uint8 and 255 in from_ids  # the ego vehicle is ignored


def test_cityscapes_prefers_train_ids_when_asked_and_falls_back(datasets, copy_of):
    assert open_dataset("cityscapes", datasets["cityscapes"], prefer="labelTrainIds").labels == "labelTrainIds"
    root = copy_of("cityscapes")
    for p in root.glob("gtFine/val/*/*_labelIds.png"):
        p.unlink()
    ds = open_dataset("cityscapes", root)
    assert ds.labels == "labelTrainIds" and "using *_gtFine_labelTrainIds.png" in ds.notices[0]


def test_label_id_table_is_cityscapes_scripts():
    assert CITYSCAPES_TRAIN_IDS[7] == 0 and CITYSCAPES_TRAIN_IDS[23] == 10 and CITYSCAPES_TRAIN_IDS[33] == 18
    assert len(CITYSCAPES_TRAIN_IDS) == 19


def test_label_values_are_checked(tmp_path):
    path = tmp_path / "x_gtFine_labelIds.png"
    Image.fromarray(np.array([[7, 0, 24, 1]], np.uint8)).save(path)
    assert read_cityscapes_label(path, "labelIds").tolist() == [[0, 255, 11, 255]]
    Image.fromarray(np.array([[7, 40]], np.uint8)).save(path)
    with pytest.raises(DatasetError, match=r"x_gtFine_labelIds\.png holds id 40, not a Cityscapes labelId"):
        read_cityscapes_label(path, "labelIds")
    Image.fromarray(np.array([[3, 19]], np.uint8)).save(path)
    with pytest.raises(DatasetError, match="holds 19, not a Cityscapes trainId"):
        read_cityscapes_label(path, "labelTrainIds")


def test_cityscapes_missing_label_names_the_file(copy_of):
    root = copy_of("cityscapes")
    victim = sorted(root.glob("gtFine/val/*/*_labelIds.png"))[1]
    victim.unlink()
    with pytest.raises(DatasetError, match=rf"label not found: .*{victim.name}"):
        open_dataset("cityscapes", root)
    assert not open_dataset("cityscapes", root, labels=False).has_labels


def test_wrong_layouts_say_what_was_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"not a Cityscapes layout .*leftImg8bit/val/<city>"):
        open_dataset("cityscapes", tmp_path / "empty")
    with pytest.raises(DatasetError, match=r"no images .*ILSVRC2012_val_00000001.JPEG"):
        open_dataset("imagenet", tmp_path / "empty")
    with pytest.raises(DatasetError, match=r"not a DSB2018 layout .*dsb2018_96/images"):
        open_dataset("dsb2018", tmp_path / "empty")
    with pytest.raises(DatasetError, match="dataset folder not found"):
        open_dataset("dsb2018", tmp_path / "nope")


def test_cityscapes_root_may_be_the_folder_above(datasets):
    assert open_dataset("cityscapes", datasets["cityscapes"].parent / "cityscapes").root == datasets["cityscapes"]


def test_imagenet_labels_and_limit(datasets):
    ds = open_dataset("imagenet", datasets["imagenet"], limit=4)
    assert ds.total == 6 and [s.id for s in ds.samples] == [f"ILSVRC2012_val_{i:08d}" for i in range(1, 5)]
    lines = (datasets["imagenet"] / "val_label.txt").read_text().split("\n")
    assert ds.samples[0].label == int(lines[0].split()[1])


def test_imagenet_label_file_errors(copy_of):
    root = copy_of("imagenet")
    label_file = root / "val_label.txt"
    text = label_file.read_text().splitlines()
    label_file.write_text("\n".join(text[1:]) + "\n")
    with pytest.raises(DatasetError, match=r"ILSVRC2012_val_00000001\.JPEG: no line in .*val_label\.txt"):
        open_dataset("imagenet", root)
    label_file.write_text(text[0] + " extra\n")
    with pytest.raises(DatasetError, match=r"val_label\.txt:1: expected '<image> <class>'"):
        open_dataset("imagenet", root)
    label_file.unlink()
    with pytest.raises(DatasetError, match=r"no val_label.txt"):
        open_dataset("imagenet", root)
    assert len(open_dataset("imagenet", root, labels=False).samples) == 6


def test_dsb2018_ids_masks_and_upstream_split(datasets, copy_of):
    ds = open_dataset("dsb2018", datasets["dsb2018"])
    ids = (datasets["dsb2018"] / "val_ids.txt").read_text().split()
    assert [s.id for s in ds.samples] == ids  # val_ids.txt order, as the guide reads it
    mask = ds.read_label(ds.samples[0])
    assert mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
    root = copy_of("dsb2018")
    (root / "val_ids.txt").unlink()
    split = open_dataset("dsb2018", root)
    assert len(split.samples) == 1 and "random_state=41" in split.notices[0]  # ceil(0.2 * 5)
    (root / "dsb2018_96" / "masks" / "0" / f"{ids[0]}.png").unlink()
    (root / "val_ids.txt").write_text(ids[0] + "\n")
    with pytest.raises(DatasetError, match=rf"mask not found: .*{ids[0]}\.png"):
        open_dataset("dsb2018", root)


def test_upstream_split_is_sklearns_shuffle_split():
    ids = [f"id{i:03d}" for i in range(670)]
    test = upstream_split(ids)
    assert len(test) == 134
    # ShuffleSplit: the first ceil(0.2 n) of RandomState(41).permutation(n)
    assert test[:3] == [ids[i] for i in np.random.RandomState(41).permutation(670)[:3]]


def test_ids_file_tolerates_a_pasted_list_and_refuses_duplicates(tmp_path):
    path = tmp_path / "val_ids.txt"
    path.write_text("['a1', 'b2',\n 'c3']\n")
    assert read_ids(path) == ["a1", "b2", "c3"]
    path.write_text("a1\na1\n")
    with pytest.raises(DatasetError, match="id a1 is listed twice"):
        read_ids(path)
