"""Datasets: every layout to the ImageTable contract; exact counts on tiny trees and on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medxfer.data.datasets import (
    DatasetError,
    list_layouts,
    list_tasks,
    load_dataset,
    load_datasets,
    parse_spec,
)
from medxfer.data.layouts import kermany_patient
from medxfer.data.manifests import FINDING_MAP, map_finding


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")  # listing never decodes, so any bytes do


def test_registries() -> None:
    assert list_layouts() == [
        "actualmed",
        "covid19-radiography",
        "csv",
        "figure1",
        "folder",
        "ieee8023",
        "kermany",
    ]
    assert list_tasks() == [
        "covid-3class",
        "covid-4class",
        "covid-vs-normal",
        "kermany-3class",
        "kermany-binary",
    ]


def test_parse_spec(tmp_path: Path) -> None:
    assert parse_spec("data/x") == ("folder", Path("data/x"), {})
    assert parse_spec("kermany:/d/k") == ("kermany", Path("/d/k"), {})
    assert parse_spec("csv:l.csv?path=file&label=class") == (
        "csv",
        Path("l.csv"),
        {"path": "file", "label": "class"},
    )
    with pytest.raises(
        DatasetError, match="unknown dataset layout 'nope'; choose one of: actualmed, covid19"
    ):
        load_datasets(["nope:/x"])
    with pytest.raises(DatasetError, match="folder not found"):
        load_datasets([str(tmp_path / "missing")])


def test_folder_layout_with_splits(tmp_path: Path) -> None:
    _touch(tmp_path, "train/b/1.png", "train/a/2.jpg", "train/a/sub/3.PNG", "val/b/4.png", "test/a/5.dcm")
    _touch(tmp_path, "train/a/notes.txt", "train/a/.hidden.png")
    data = load_datasets([str(tmp_path)])
    assert data.class_names == ["a", "b"]
    table = data.table
    assert len(data) == 5
    assert list(table.columns[:7]) == ["path", "label", "label_name", "patient_id", "source", "view", "split"]
    assert sorted(table["split"]) == ["test", "train", "train", "train", "val"]
    assert dict(zip(table["path"].map(lambda p: Path(p).name), table["label"], strict=True)) == {
        "1.png": 1,
        "2.jpg": 0,
        "3.PNG": 0,
        "4.png": 1,
        "5.dcm": 0,
    }
    assert (table["patient_id"] == table["path"]).all() and (table["source"] == tmp_path.name).all()
    assert all(Path(p).is_absolute() for p in table["path"])
    np.testing.assert_array_equal(data.labels, table["label"].to_numpy())
    assert len(data.subset("train")) == 3 and data.subset("val").class_names == ["a", "b"]
    assert data.counts().loc["train"].tolist() == [2, 1]


def test_empty_and_classless_folders(tmp_path: Path) -> None:
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images found"):
        load_datasets([str(tmp_path / "empty")])
    _touch(tmp_path, "flat/x.png")
    with pytest.raises(DatasetError, match="no class sub-folders"):
        load_datasets([str(tmp_path / "flat")])


def test_same_path_twice_refused(tmp_path: Path) -> None:
    _touch(tmp_path, "a/1.png")
    with pytest.raises(DatasetError, match="listed twice"):
        load_datasets([str(tmp_path), f"folder:{tmp_path}"])


def test_csv_layout_columns_and_options(tmp_path: Path) -> None:
    _touch(tmp_path, "img/1.png", "img/2.png", "img/3.png")
    (tmp_path / "m.csv").write_text(
        "path,label,patient_id,split,view\nimg/1.png,cat,p1,train,PA\nimg/2.png,dog,,Validation,\n"
        "img/3.png,,p3,test,\n"
    )
    data = load_datasets([f"csv:{tmp_path / 'm.csv'}"])
    assert data.class_names == ["cat", "dog"]  # the row with an empty label is skipped
    assert data.table["patient_id"].tolist() == ["p1", str(tmp_path / "img/2.png")]
    assert data.table["split"].tolist() == ["train", "val"]
    assert data.table["view"].tolist() == ["PA", ""]
    assert data.table["source"].tolist() == [tmp_path.name] * 2

    (tmp_path / "h.csv").write_text("file,class,fold\nimg/1.png,x,0\nimg/2.png,y,1\n")
    plain = load_datasets([f"csv:{tmp_path / 'h.csv'}"])
    assert plain.table["split"].tolist() == ["", ""]
    mapped = load_datasets([f"csv:{tmp_path / 'h.csv'}?split=fold&splits=0:train,1:val"])
    assert mapped.table["split"].tolist() == ["train", "val"]
    with pytest.raises(DatasetError, match="split value '0' is not train/val/test"):
        load_datasets([f"csv:{tmp_path / 'h.csv'}?split=fold"])
    with pytest.raises(DatasetError, match="column 'klass' .* not found; columns are: file, class, fold"):
        load_datasets([f"csv:{tmp_path / 'h.csv'}?label=klass"])


def test_csv_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match=r"no path column .* columns are: a, b"):
        load_datasets([f"csv:{tmp_path / 'bad.csv'}"])
    (tmp_path / "gone.csv").write_text("path,label\nnot_there.png,x\n")
    with pytest.raises(DatasetError, match="1 listed file\\(s\\) not found"):
        load_datasets([f"csv:{tmp_path / 'gone.csv'}"])


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        ("person1000_bacteria_2931.jpeg", "person1000"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
        ("odd.jpeg", None),
    ],
)
def test_kermany_patient(name: str, patient: str | None) -> None:
    assert kermany_patient(name) == patient


def test_kermany_layout_tasks(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "train/NORMAL/IM-0001-0001.jpeg",
        "train/NORMAL/NORMAL2-IM-0002-0001.jpeg",
        "train/PNEUMONIA/person1_bacteria_1.jpeg",
        "train/PNEUMONIA/person1_bacteria_2.jpeg",
        "test/PNEUMONIA/person2_virus_3.jpeg",
    )
    raw = load_datasets([f"kermany:{tmp_path}"])
    assert raw.class_names == ["bacterial", "normal", "viral"]
    assert sorted(raw.table["patient_id"].unique()) == [
        "kermany:IM-0001",
        "kermany:NORMAL2-IM-0002",
        "kermany:person1",
        "kermany:person2",
    ]
    binary = load_datasets([f"kermany:{tmp_path}"], task="kermany-binary")
    assert binary.class_names == ["normal", "pneumonia"]
    names = binary.table["path"].map(lambda p: Path(p).name)
    assert dict(zip(names, binary.labels.tolist(), strict=True)) == {
        "IM-0001-0001.jpeg": 0,
        "NORMAL2-IM-0002-0001.jpeg": 0,
        "person1_bacteria_1.jpeg": 1,
        "person1_bacteria_2.jpeg": 1,
        "person2_virus_3.jpeg": 1,
    }
    assert binary.subset("test").table["label_name"].tolist() == ["pneumonia"]
    custom = load_datasets([f"kermany:{tmp_path}"], label_map={"viral": "sick", "normal": "ok"})
    assert custom.class_names == ["ok", "sick"] and len(custom) == 3
    with pytest.raises(DatasetError, match="unknown task 'x'; valid tasks: covid-3class"):
        load_datasets([f"kermany:{tmp_path}"], task="x")


def test_covid19_radiography_with_and_without_images_dir(tmp_path: Path) -> None:
    _touch(tmp_path, "COVID/images/COVID-1.png", "COVID/masks/COVID-1.png", "Normal/images/Normal-1.png")
    _touch(tmp_path, "Viral Pneumonia/Viral Pneumonia-1.png", "Lung_Opacity/images/L-1.png")
    data = load_datasets([f"covid19-radiography:{tmp_path}"])
    assert data.class_names == ["covid", "lung_opacity", "normal", "viral"]
    assert len(data) == 4 and (data.table["source"] == "covid19-radiography").all()
    three = load_datasets([f"covid19-radiography:{tmp_path}"], task="covid-3class")
    assert three.class_names == ["covid", "normal", "viral"] and len(three) == 3
    binary = load_datasets([f"covid19-radiography:{tmp_path}"], task="covid-vs-normal")
    assert binary.class_names == ["normal", "covid"]
    assert dict(zip(binary.table["label_name"], binary.labels, strict=True)) == {"covid": 1, "normal": 0}


def test_map_finding() -> None:
    assert map_finding("COVID-19, ARDS", FINDING_MAP) == "covid"
    assert map_finding("Pneumonia/Bacterial/Streptococcus", FINDING_MAP) == "bacterial"
    assert map_finding("Pneumonia/Viral/SARS", FINDING_MAP) == "viral"
    assert map_finding("No Finding", FINDING_MAP) == "normal"
    assert map_finding("todo", FINDING_MAP) is None
    assert map_finding("Pneumocystis", FINDING_MAP) is None


def test_ieee8023_layout_views_dedup_map(tmp_path: Path) -> None:
    _touch(tmp_path, "images/a.jpg", "images/b.jpg", "images/c.jpg", "images/d.jpg", "images/e.jpg")
    (tmp_path / "metadata.csv").write_text(
        "patientid,finding,view,folder,filename\n"
        "1,COVID-19,PA,images,a.jpg\n1,COVID-19,L,images,b.jpg\n2,Streptococcus,AP Supine,images,c.jpg\n"
        "3,Pneumocystis,AP,images,d.jpg\n4,todo,,images,e.jpg\n5,No Finding,PA,images,a.jpg\n"
        "6,SARS,PA,images,missing.jpg\n"
    )
    with pytest.warns(UserWarning, match="1 listed image"):
        data = load_datasets([f"ieee8023:{tmp_path}"])
    assert data.table["label_name"].tolist() == ["covid", "bacterial"]
    assert data.table["patient_id"].tolist() == ["ieee8023:1", "ieee8023:2"]
    assert data.table["view"].tolist() == ["PA", "AP Supine"]
    with pytest.warns(UserWarning):
        more = load_datasets([f"ieee8023:{tmp_path}?views=all&map=Pneumocystis:fungal"])
    assert more.table["label_name"].tolist() == ["covid", "covid", "bacterial", "fungal"]


def _real(shared: Path, spec: str, task: str | None = None):  # noqa: ANN202
    layout, _, rest = spec.partition(":")
    return load_datasets([f"{layout}:{shared / rest}"], task=task)


def test_real_kermany(shared_data: Path) -> None:
    data = _real(shared_data, "kermany:kermany")
    assert data.table["label_name"].value_counts().to_dict() == {
        "bacterial": 2530,
        "viral": 1345,
        "normal": 1341,
    }
    assert set(data.table["split"]) == {"train"}
    assert not data.table["patient_id"].str.startswith("/").any()  # every name has a patient id
    binary = _real(shared_data, "kermany:kermany", "kermany-binary")
    assert binary.class_names == ["normal", "pneumonia"] and int(binary.labels.sum()) == 3875


def test_real_covid19_radiography(shared_data: Path) -> None:
    data = _real(shared_data, "covid19-radiography:covid19-radiography")
    assert data.table["label_name"].value_counts().to_dict() == {"covid": 2872, "normal": 1602}


def test_real_colon_csv_and_folder(shared_data: Path) -> None:
    expected = {"polyp": 627, "normal-cecum": 319, "bbps-2-3": 260, "bbps-0-1": 126, "impacted-stool": 99}
    by_csv = _real(shared_data, "csv:colon/labels.csv")
    assert len(by_csv) == 1431 and by_csv.table["label_name"].value_counts().to_dict() == expected
    folds = _real(
        shared_data,
        "csv:colon/labels.csv?path=file&label=class&split=hyperkvasir_2fold_split_index&splits=0:train,1:val",
    )
    assert set(folds.table["split"]) == {"train", "val"}
    by_folder = load_datasets([str(shared_data / "colon")])
    assert by_folder.table["label_name"].value_counts().to_dict() == expected


def test_real_covid_collections(shared_data: Path) -> None:
    counts = {
        "ieee8023": {"covid": 322, "bacterial": 29, "viral": 15, "normal": 14},
        "actualmed": {"covid": 21, "normal": 12},
        "figure1": {"covid": 26, "normal": 2},
    }
    patients = {"ieee8023": 224, "actualmed": 29, "figure1": 27}
    for name, expected in counts.items():
        data = _real(shared_data, f"{name}:covid/{name}")
        assert data.table["label_name"].value_counts().to_dict() == expected, name
        assert data.table["patient_id"].nunique() == patients[name], name
    ieee = _real(shared_data, "ieee8023:covid/ieee8023")
    assert set(ieee.table["view"]) == {"PA", "AP", "AP Supine"}


def test_real_combined_task_is_fast(shared_data: Path) -> None:
    import time

    specs = [f"{n}:{shared_data / 'covid' / n}" for n in ("ieee8023", "actualmed", "figure1")]
    specs += [
        f"kermany:{shared_data / 'kermany'}",
        f"covid19-radiography:{shared_data / 'covid19-radiography'}",
    ]
    start = time.perf_counter()
    data = load_datasets(specs, task="covid-3class")
    assert time.perf_counter() - start < 5  # listing only, no decoding
    assert data.class_names == ["covid", "normal", "viral"]
    assert data.table["label_name"].value_counts().to_dict() == {"covid": 3241, "normal": 2971, "viral": 1360}
    assert load_dataset(f"kermany:{shared_data / 'kermany'}").shape == (5216, 6)
