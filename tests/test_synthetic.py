"""Tests for mrrn_keras/data/synthetic.py: the procedural motion dataset."""

import numpy as np
import pytest

from mrrn_keras.data import synthetic, video


def clip_of(label, seed=0, frames=8, size=32):
    return synthetic.render_clip(label, frames=frames, size=size, rng=np.random.default_rng(seed))


def test_shapes_dtype_and_label_forms():
    by_name = clip_of("rotate_cw")
    by_index = clip_of(synthetic.MOTION_CLASSES.index("rotate_cw"))
    assert by_name.shape == (8, 32, 32, 3) and by_name.dtype == np.uint8
    np.testing.assert_array_equal(by_name, by_index)


def test_deterministic_per_seed():
    np.testing.assert_array_equal(clip_of("grow", seed=3), clip_of("grow", seed=3))
    assert not np.array_equal(clip_of("grow", seed=3), clip_of("grow", seed=4))
    a = synthetic.render_dataset(2, frames=4, size=16, seed=5)
    b = synthetic.render_dataset(2, frames=4, size=16, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_reversed_is_an_involution_over_the_classes():
    assert set(synthetic.REVERSED) == set(synthetic.MOTION_CLASSES)
    for name, twin in synthetic.REVERSED.items():
        assert synthetic.REVERSED[twin] == name
    assert set(synthetic.UCF_CLASS_NAMES) == set(synthetic.MOTION_CLASSES)


@pytest.mark.parametrize("name", synthetic.MOTION_CLASSES)
@pytest.mark.parametrize("frames", [2, 7, 8])
def test_time_reversal_gives_the_reverse_class_exactly(name, frames):
    for seed in range(3):
        clip = clip_of(name, seed=seed, frames=frames)
        twin = clip_of(synthetic.REVERSED[name], seed=seed, frames=frames)
        np.testing.assert_array_equal(clip[::-1], twin)


def test_motion_is_visible_and_still_is_still():
    def change(name):
        # Smallest mean |last - first| frame difference over a few clips.
        clips = [clip_of(name, s).astype(int) for s in range(6)]
        return min(np.abs(clip[-1] - clip[0]).mean() for clip in clips)

    assert change("still") == 0  # palindromic noise: first and last frames are identical
    for name in synthetic.MOTION_CLASSES[1:]:
        # Rotations change fewer pixels than translations and scaling do.
        assert change(name) > (1 if name.startswith("rotate") else 3), name


def test_object_travels_far_in_translations():
    # Centre of the pixels that differ from the time-median (the moving object).
    directions = [("move_right", 1, 1), ("move_left", 1, -1), ("move_down", 0, 1), ("move_up", 0, -1)]
    for name, axis, sign in directions:
        for seed in range(4):
            clip = clip_of(name, seed, frames=8, size=64).astype(int)
            background = np.median(clip, axis=0)
            moved = []
            for t in (0, 7):
                ys, xs = np.nonzero(np.abs(clip[t] - background).sum(-1) > 60)
                moved.append((ys.mean(), xs.mean())[axis])
            assert sign * (moved[1] - moved[0]) > 0.1 * 64, (name, seed)


def test_appearance_does_not_leak_the_class():
    clips, labels = synthetic.render_dataset(30, frames=2, size=16, seed=1)
    # Per-clip mean colour of the first frame; every class draws it from the
    # same distribution, so class means agree within sampling error.
    colours = clips[:, 0].reshape(len(clips), -1, 3).mean(axis=1)
    means = np.stack([colours[labels == k].mean(axis=0) for k in range(9)])
    stderr = colours.std(axis=0) / np.sqrt(30)
    assert np.all(np.abs(means - means.mean(axis=0)) < 4 * stderr)


def test_render_dataset_labels_and_class_subset():
    clips, labels = synthetic.render_dataset(
        2, frames=4, size=16, seed=0, classes=("shrink", "still")
    )
    assert clips.shape == (4, 4, 16, 16, 3) and labels.tolist() == [0, 0, 1, 1]
    full, full_labels = synthetic.render_dataset(2, frames=4, size=16, seed=0)
    shrink = synthetic.MOTION_CLASSES.index("shrink")
    np.testing.assert_array_equal(clips[:2], full[full_labels == shrink])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: clip_of("jump"), "label='jump'"),
        (lambda: clip_of(9), "label=9"),
        (lambda: clip_of("grow", frames=1), "frames=1"),
        (lambda: clip_of("grow", size=4), "size=4"),
        (lambda: synthetic.render_clip("grow", rng=0), "rng=0"),
        (lambda: synthetic.render_dataset(0, frames=4, size=16, seed=0), "n_per_class=0"),
        (lambda: synthetic.render_dataset(1, frames=4, size=16, seed=-1), "seed=-1"),
        (
            lambda: synthetic.render_dataset(1, frames=4, size=16, seed=0, classes=("grow", "grow")),
            "classes=",
        ),
    ],
)
def test_validation(call, match):
    with pytest.raises(ValueError, match=f"Received: {match}"):
        call()


def read_splits(root):
    splits = root / "splits"
    class_ind = [line.split() for line in (splits / "classInd.txt").read_text().splitlines()]
    train = [line.split() for line in (splits / "trainlist01.txt").read_text().splitlines()]
    test = [line.split() for line in (splits / "testlist01.txt").read_text().splitlines()]
    return class_ind, train, test


def group_of(relative):
    return relative.rsplit("_g", 1)[1].split("_c")[0]


def test_make_motion_dataset_ucf_layout(tmp_path):
    classes = synthetic.MOTION_CLASSES
    root = synthetic.make_motion_dataset(
        tmp_path / "motion", videos_per_class=4, frames=6, size=32, fps=8, seed=0, clips_per_group=1
    )
    assert root == tmp_path / "motion"
    class_ind, train, test = read_splits(root)
    assert class_ind == [[str(k + 1), synthetic.UCF_CLASS_NAMES[c]] for k, c in enumerate(classes)]
    assert all(len(entry) == 2 for entry in train) and all(len(entry) == 1 for entry in test)
    assert len(train) + len(test) == 4 * len(classes)
    assert len(test) == len(classes)  # round(4 groups * 0.25) = 1 group
    folder_to_label = {name: int(index) for index, name in class_ind}
    for relative, label in train:
        folder = relative.split("/")[0]
        assert int(label) == folder_to_label[folder]
        assert relative.split("/")[1].startswith(f"v_{folder}_g")
    train_groups = {group_of(relative) for relative, _ in train}
    test_groups = {group_of(relative) for (relative,) in test}
    assert test_groups == {"01"} and not train_groups & test_groups
    written = sorted((root / "videos").rglob("*.avi"))
    listed = sorted(root / "videos" / entry[0] for entry in train + test)
    assert written == listed
    for path in written:
        assert video.load_clip(path, 6).shape == (6, 32, 32, 3)
    # Video i of a class is clip i of render_dataset. mpeg4 is lossy (and
    # smooths the pixel noise), so compare against clip i and clip i + 1.
    clips, _ = synthetic.render_dataset(2, frames=6, size=32, seed=0, classes=("grow",))
    decoded = video.read_frames(root / "videos" / "Grow" / "v_Grow_g01_c01.avi").astype(int)
    own, other = (np.abs(decoded - clip).mean() for clip in clips)
    assert own < 10 and own < other / 2


def test_make_motion_dataset_mp4_and_groups(tmp_path):
    root = synthetic.make_motion_dataset(
        tmp_path, videos_per_class=8, frames=4, size=16, classes=("grow", "shrink"),
        codec="libx264", container="mp4", test_fraction=0.5, clips_per_group=2,
    )
    _, train, test = read_splits(root)
    assert {group_of(r) for (r,) in test} == {"01", "02"}
    assert {group_of(r) for r, _ in train} == {"03", "04"}
    assert all(r.endswith(".mp4") for (r,) in test)
    assert video.probe_video(root / "videos" / test[0][0]).num_frames == 4


def test_half_written_dataset_has_no_split_files(tmp_path, monkeypatch):
    small = dict(
        videos_per_class=2, frames=2, size=8, classes=("grow",), clips_per_group=1, test_fraction=0.5
    )
    synthetic.make_motion_dataset(tmp_path, **small)
    assert (tmp_path / "splits" / "classInd.txt").exists()
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(args)
        raise OSError("disk full")

    monkeypatch.setattr(video, "write_video", failing_write)
    with pytest.raises(OSError, match="disk full"):
        synthetic.make_motion_dataset(tmp_path, **small)
    assert calls and list((tmp_path / "splits").iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(videos_per_class=0), "videos_per_class=0"),
        (dict(fps=0), "fps=0"),
        (dict(test_fraction=1.0), "test_fraction=1.0"),
        (dict(container=".avi"), "container='.avi'"),
        (dict(codec="libx264", size=15), "size=15"),
        (dict(videos_per_class=4, clips_per_group=4), "videos_per_class=4"),
    ],
)
def test_make_motion_dataset_validation(tmp_path, kwargs, match):
    args = dict(videos_per_class=2, frames=2, size=8, clips_per_group=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"Received: {match}"):
        synthetic.make_motion_dataset(tmp_path / "d", **args)
    assert not (tmp_path / "d").exists()
