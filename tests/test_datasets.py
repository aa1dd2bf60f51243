"""Tests for mrrn_keras/data/datasets.py: UCF-101, HMDB-51, folder and CSV indexes."""

import pathlib

import pytest

from mrrn_keras.data import datasets
from mrrn_keras.data.synthetic import make_motion_dataset
from mrrn_keras.errors import DatasetError
from tests.helpers import write_class_videos


def test_ucf101_from_motion_dataset(tmp_path):
    root = make_motion_dataset(
        tmp_path, videos_per_class=2, frames=4, size=16, classes=("grow", "shrink"),
        clips_per_group=1, test_fraction=0.5,
    )
    train = datasets.read_dataset("ucf101", root, subset="train")
    test = datasets.read_dataset("ucf101", root, subset="test")
    assert train.class_names == test.class_names == ("Grow", "Shrink")
    assert sorted(train.labels) == sorted(test.labels) == [0, 1]
    assert all(pathlib.Path(p).is_file() for p in train.paths + test.paths)
    assert not set(train.paths) & set(test.paths)


def write_hmdb(root, split_lines):
    (root / "splits").mkdir(parents=True)
    for name, lines in split_lines.items():
        (root / "splits" / f"{name}_test_split1.txt").write_text("\n".join(lines) + "\n")


def test_hmdb51_tags(tmp_path):
    write_hmdb(tmp_path, {
        "wave": ["wave_a.avi 1", "wave_b.avi 2", "wave_c.avi 0"],
        "clap": ["clap_a.avi 2 ", "clap_b.avi 1"],
    })
    train = datasets.read_hmdb51(tmp_path, split=1, subset="train")
    test = datasets.read_hmdb51(tmp_path, split=1, subset="test")
    assert train.class_names == ("clap", "wave")
    assert [pathlib.Path(p).name for p in train.paths] == ["clap_b.avi", "wave_a.avi"]
    assert train.labels == (0, 1)
    assert [pathlib.Path(p).name for p in test.paths] == ["clap_a.avi", "wave_b.avi"]
    assert test.paths[1].endswith("videos/wave/wave_b.avi")


def test_hmdb51_errors_name_file_and_line(tmp_path):
    with pytest.raises(DatasetError, match="_test_split2.txt"):
        datasets.read_hmdb51(tmp_path, split=2)
    write_hmdb(tmp_path, {"wave": ["wave_a.avi 1", "wave_b.avi 3"]})
    with pytest.raises(DatasetError, match=r"wave_test_split1\.txt:2: expected"):
        datasets.read_hmdb51(tmp_path)


def test_folder_of_class_folders(tmp_path):
    write_class_videos(tmp_path / "train", {"b": 2, "a": 1})
    (tmp_path / "train" / "a" / "notes.txt").write_text("not a video")
    (tmp_path / "train" / "empty").mkdir()
    index = datasets.read_dataset("folder", tmp_path, subset="train")
    assert index.class_names == ("a", "b")
    assert index.labels == (0, 1, 1)
    assert [pathlib.Path(p).name for p in index.paths] == ["a_0.avi", "b_0.avi", "b_1.avi"]
    write_class_videos(tmp_path / "test", {"b": 1})
    test = datasets.read_dataset("folder", tmp_path, subset="test", class_names=index.class_names)
    assert test.labels == (1,)
    with pytest.raises(DatasetError, match="not among the given class_names"):
        datasets.read_folder(tmp_path / "train", class_names=("a",))
    with pytest.raises(DatasetError, match="not found"):
        datasets.read_folder(tmp_path / "nope")


def test_csv_with_header_names_and_spans(tmp_path):
    (tmp_path / "train.csv").write_text(
        "path,label,start,end\n"
        "clips/x.mp4,dance,1.5,3\n"
        "sub/../y.mp4,cook,,\n"
        "\n"
        "z.mp4,dance\n"
    )
    index = datasets.read_dataset("csv", tmp_path, subset="train")
    assert index.class_names == ("cook", "dance")
    assert index.labels == (1, 0, 1)
    assert index.paths[0] == str(tmp_path / "clips" / "x.mp4")
    assert index.paths[1] == str(tmp_path / "y.mp4")
    assert index.spans == ((1.5, 3.0), None, None)
    (tmp_path / "plain.csv").write_text("a.mp4,x\n")
    assert datasets.read_csv(tmp_path / "plain.csv").spans is None


@pytest.mark.parametrize(
    "text, match",
    [
        ("a.mp4\n", r"bad\.csv:1: expected 'path,label"),
        ("a.mp4,x\nb.mp4,y,1\n", r"bad\.csv:2: expected"),
        ("a.mp4,x,2,1\n", r"bad\.csv:1: end must be after start"),
        ("a.mp4,x,zero,1\n", r"bad\.csv:1: start/end must be seconds"),
        ("path,label\n", r"bad\.csv: no 'path,label"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path, text, match):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(DatasetError, match=match):
        datasets.read_csv(tmp_path / "bad.csv")


def test_unknown_format():
    with pytest.raises(ValueError, match="Received: format='kinetics'"):
        datasets.read_dataset("kinetics", "/tmp")


def test_the_official_archives_layouts_are_found(tmp_path, monkeypatch):
    # UCF-101 as UCF101.rar and the RecognitionTask zip unpack: UCF-101/ + ucfTrainTestlist/.
    ucf = tmp_path / "ucf"
    (ucf / "UCF-101" / "Drum").mkdir(parents=True)
    (ucf / "ucfTrainTestlist").mkdir()
    (ucf / "ucfTrainTestlist" / "classInd.txt").write_text("1 Drum\n")
    (ucf / "ucfTrainTestlist" / "trainlist01.txt").write_text("Drum/v_Drum_g08_c01.avi 1\n")
    train = datasets.read_dataset("ucf101", ucf, subset="train")
    assert train.paths == (str((ucf / "UCF-101" / "Drum" / "v_Drum_g08_c01.avi").resolve()),)
    monkeypatch.chdir(tmp_path)  # a relative root too
    assert datasets.read_dataset("ucf101", "ucf", subset="train") == train
    # HMDB-51: class folders next to testTrainMulti_7030_splits/.
    hmdb = tmp_path / "hmdb"
    (hmdb / "brush_hair").mkdir(parents=True)
    (hmdb / "testTrainMulti_7030_splits").mkdir()
    (hmdb / "testTrainMulti_7030_splits" / "brush_hair_test_split1.txt").write_text(
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2\n")
    test = datasets.read_dataset("hmdb51", hmdb, subset="test")
    assert test.paths == (str((hmdb / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0.avi")
                              .resolve()),)
    # Folders anywhere, named by flags.
    moved = tmp_path / "elsewhere"
    (hmdb / "testTrainMulti_7030_splits").rename(moved)
    with pytest.raises(DatasetError, match="no hmdb51 split folder.*testTrainMulti_7030_splits"):
        datasets.read_dataset("hmdb51", hmdb, subset="test")
    again = datasets.read_dataset("hmdb51", hmdb, subset="test", splits_dir=moved,
                                  videos_dir=hmdb)
    assert again == test


def test_split_lines_and_csv_rows_outside_the_videos_folder_are_refused(tmp_path):
    # A split line such as `A/../../../elsewhere/x.avi 1` was resolved outside the
    # videos folder and trained on.
    ucf = tmp_path / "ucf"
    (ucf / "videos" / "Drum").mkdir(parents=True)
    (ucf / "splits").mkdir()
    (ucf / "splits" / "classInd.txt").write_text("1 Drum\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (ucf / "videos" / "Drum" / "link.avi").symlink_to(outside / "x.avi")
    for line in ("Drum/../../../elsewhere/x.avi 1", "Drum/link.avi 1"):
        (ucf / "splits" / "trainlist01.txt").write_text(f"Drum/v_Drum_g01_c01.avi 1\n{line}\n")
        with pytest.raises(DatasetError, match=r"trainlist01\.txt:2: .* outside the videos folder"):
            datasets.read_dataset("ucf101", ucf, subset="train")
    # `..` that stays inside is a path like any other.
    (ucf / "splits" / "trainlist01.txt").write_text("Drum/../Drum/v_Drum_g01_c01.avi 1\n")
    assert datasets.read_dataset("ucf101", ucf, subset="train").paths == (
        str((ucf / "videos" / "Drum" / "v_Drum_g01_c01.avi").resolve()),)

    hmdb = tmp_path / "hmdb"
    (hmdb / "videos" / "run").mkdir(parents=True)
    (hmdb / "splits").mkdir()
    (hmdb / "splits" / "run_test_split1.txt").write_text("a.avi 1\n../../../elsewhere/x.avi 1\n")
    with pytest.raises(DatasetError, match=r"run_test_split1\.txt:2: .* outside the videos"):
        datasets.read_dataset("hmdb51", hmdb, subset="train")

    (tmp_path / "csv").mkdir()
    for row in ("../elsewhere/x.avi,a", f"{outside / 'x.avi'},a"):
        (tmp_path / "csv" / "train.csv").write_text(f"path,label\nv.avi,a\n{row}\n")
        with pytest.raises(DatasetError, match=r"train\.csv:3: .* outside"):
            datasets.read_csv(tmp_path / "csv" / "train.csv")
