"""ROI proposals (the landmark network as a second-stage detector): geometry, no invented hands, real recall.

Both sources (PipelineConfig.proposal_source "palm", the default, and "grid") must find what the palm pass missed
and invent nothing; the process-level tests run each.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import missing

from hand_recon_ros.engines.base import KNOWN_OPTIONS
from hand_recon_ros.pipeline import palm_proposals as pp
from hand_recon_ros.pipeline import roi_proposals as rp
from hand_recon_ros.pipeline.config import ConfigError, PipelineConfig
from hand_recon_ros.pipeline.hand_pipeline import HandPipeline, backend_options
from hand_recon_ros.pipeline.roi import landmarks_to_roi, roi_corners
from hand_recon_ros.pipeline.types import RotatedRect

# A proposal hand matches a detector hand when their wrists are this close (fraction of the hand's ROI side).
WRIST_MATCH_FRACTION = 0.25
FRAMES_IN_VIDEO_TEST = 7
SOURCES = ("palm", "grid")
# Video frames the frame's own palm pass misses once darkened / given noise (benchmarks/bench_proposals.py found
# them); with a bilinear instead of an area-averaged look the palm source misses the hand of noisy frame 520.
DIM_FRAMES = (20, 120, 200)
NOISY_FRAMES = (420, 520, 620)
NOISY_RUN = (420, 421, 422, 423, 424)  # consecutive frames, for video mode


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def pipeline(image_mode_pipeline):
    return image_mode_pipeline


@pytest.fixture()
def fresh(pipeline):
    """The shared pipeline back at image mode with proposals on, tracks forgotten."""
    pipeline.update(mode="image", max_hands=2, min_presence_score=0.5, roi_proposals=True,
                    proposal_interval_frames=PipelineConfig.proposal_interval_frames,
                    proposal_source=PipelineConfig.proposal_source, proposal_crops=PipelineConfig.proposal_crops)
    pipeline.reset()
    return pipeline


@pytest.fixture(scope="module")
def woman(woman_hands_path):
    return _rgb(woman_hands_path)


@pytest.fixture(scope="module")
def woman_hands(pipeline, woman):
    """The detector pipeline's two hands on woman_hands.jpg (proposals are not needed there)."""
    pipeline.update(mode="image", max_hands=2, roi_proposals=False)
    hands = pipeline.process(woman).hands
    pipeline.update(roi_proposals=True)
    assert sorted(h.side for h in hands) == ["left", "right"]
    return {h.side: h.detection for h in hands}


def _mask(image: np.ndarray, keypoints: list[np.ndarray]) -> np.ndarray:
    """The image with each hand's ROI painted flat grey (a scene with those hands removed)."""
    out = image.copy()
    for kp in keypoints:
        cv2.fillConvexPoly(out, roi_corners(landmarks_to_roi(kp)).astype(np.int32), (90, 90, 90))
    return out


def _random_shapes(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((480, 640, 3), rng.integers(0, 256, 3), np.uint8)
    for _ in range(40):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, 640)), int(rng.integers(0, 480))
        if rng.random() < 0.5:
            axes = (int(rng.integers(5, 120)), int(rng.integers(5, 120)))
            cv2.ellipse(image, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            cv2.rectangle(image, (x, y), (int(rng.integers(0, 640)), int(rng.integers(0, 480))), colour, -1)
    return cv2.GaussianBlur(image, (5, 5), 0)


# ---- geometry ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("width,height", [(640, 480), (334, 512), (1920, 1080), (300, 300), (240, 640)])
def test_grid_is_square_crops_covering_the_image(width, height):
    rects = rp.grid_proposals(width, height)
    assert rects
    assert all(r.width == r.height > 0 for r in rects)
    # Every pixel lies inside some rotation-0 crop of each fine size (the tiles cover the image).
    fine = rp.FINE_TILE_FRACTION * min(width, height)
    tiles = [r for r in rects if r.rotation == 0.0 and math.isclose(r.width, fine)]
    ys, xs = np.mgrid[0:height:7, 0:width:7]
    covered = np.zeros(xs.shape, bool)
    for r in tiles:
        covered |= (np.abs(xs - r.cx) <= r.width / 2 + 0.5) & (np.abs(ys - r.cy) <= r.height / 2 + 0.5)
    assert covered.all()
    # The whole image is one crop at every coarse rotation.
    whole = [r for r in rects if math.isclose(r.width, max(width, height))]
    assert sorted(r.rotation for r in whole) == sorted(rp.COARSE_ROTATIONS_RAD)


def test_grid_size_is_bounded_for_extreme_aspect_ratios():
    rects = rp.grid_proposals(4000, 100)
    assert len(rects) <= rp.MAX_GRID_CROPS
    assert sum(math.isclose(r.width, 4000) for r in rects) == len(rp.COARSE_ROTATIONS_RAD)
    centres = sorted(r.cx for r in rects)
    assert centres[0] < 200 and centres[-1] > 3800  # the subset still spans the strip


@pytest.mark.parametrize("width,height", [(1, 100), (100, 0)])
def test_grid_rejects_degenerate_images(width, height):
    with pytest.raises(ValueError, match="at least 2x2"):
        rp.grid_proposals(width, height)


def test_partner_proposals_beside_and_over_each_found_hand():
    found = RotatedRect(100.0, 200.0, 80.0, 80.0, 0.3)
    rects = rp.partner_proposals([found, found])
    assert len(rects) == 6
    assert all(r.width == found.width and r.rotation == pytest.approx(-0.3) for r in rects)
    offsets = sorted(round(math.hypot(r.cx - found.cx, r.cy - found.cy), 6) for r in rects[:3])
    assert offsets == pytest.approx([0.0, rp.PARTNER_SHIFT_FRACTION * 80.0, rp.PARTNER_SHIFT_FRACTION * 80.0])


# ---- the landmark network as detector (real weights, ONNX Runtime) ----------------------------------------------

def test_proposals_alone_find_both_woman_hands_with_true_sides(pipeline, woman, woman_hands):
    proposals = rp.propose_hands(pipeline.landmarks, woman, [], 2, 0.5)
    assert len(proposals) == 2
    sides = set()
    for p in proposals:
        side = "right" if p.output.right_probability >= 0.5 else "left"
        truth = woman_hands[side].keypoints_2d
        limit = WRIST_MATCH_FRACTION * landmarks_to_roi(truth).width
        assert np.linalg.norm(p.output.keypoints_2d[0] - truth[0]) < limit, f"{side} proposal is not on the {side} hand"
        assert p.output.presence >= rp.PROPOSAL_MIN_PRESENCE
        sides.add(side)
    assert sides == {"left", "right"}


def test_proposals_skip_found_hands(pipeline, woman, woman_hands):
    found = [(landmarks_to_roi(d.keypoints_2d), d.keypoints_2d) for d in woman_hands.values()]
    assert rp.propose_hands(pipeline.landmarks, woman, found, 1, 0.5) == []
    left = woman_hands["left"]
    only = rp.propose_hands(pipeline.landmarks, woman, [(landmarks_to_roi(left.keypoints_2d), left.keypoints_2d)],
                            1, 0.5)
    assert len(only) == 1 and only[0].output.right_probability >= 0.5


@pytest.mark.parametrize("source", SOURCES)
def test_pipeline_finds_a_hand_the_detector_cannot(fresh, woman, woman_hands, source):
    # With the detector made blind (score threshold 1.0), the proposals alone must still find both hands.
    fresh.update(min_detection_score=1.0, proposal_source=source)
    try:
        result = fresh.process(woman)
    finally:
        fresh.update(min_detection_score=0.5)
    assert "proposals" in result.timing_ms
    assert sorted(h.side for h in result.hands) == ["left", "right"]


def test_no_landmark_call_exceeds_the_backend_max_batch(fresh, woman, monkeypatch):
    sizes: list[int] = []
    run_filled = fresh.landmarks.backend.run_filled  # the estimator's one way into the network

    def recording_run_filled(batch, fill):
        sizes.append(batch)
        return run_filled(batch, fill)

    monkeypatch.setattr(fresh.landmarks.backend, "run_filled", recording_run_filled)
    fresh.update(min_detection_score=1.0, proposal_source="grid")
    try:
        fresh.process(woman)
    finally:
        fresh.update(min_detection_score=0.5)
    grid = len(rp.grid_proposals(woman.shape[1], woman.shape[0]))
    assert sum(sizes) > grid and max(sizes) <= backend_options(fresh.config)["max_batch"]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("keep", ["left", "right"])
@pytest.mark.parametrize("transform", ["none", "rotate90", "rotate180", "half_size"])
def test_proposals_alone_find_one_hand_without_a_ghost(fresh, woman, woman_hands, keep, transform, source):
    # woman_hands.jpg with the other hand painted out, turned or shrunk; the palm detector made blind.
    image = _mask(woman, [woman_hands["right" if keep == "left" else "left"].keypoints_2d])
    transforms = {"none": lambda im: im, "rotate90": lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
                  "rotate180": lambda im: cv2.rotate(im, cv2.ROTATE_180),
                  "half_size": lambda im: cv2.resize(im, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)}
    image = transforms[transform](image)
    fresh.update(min_detection_score=1.0, proposal_source=source)
    try:
        result = fresh.process(image)
    finally:
        fresh.update(min_detection_score=0.5)
    assert [h.side for h in result.hands] == [keep]


def test_all_hands_found_means_no_proposals(fresh, woman):
    result = fresh.process(woman)
    assert "proposals" not in result.timing_ms
    assert sorted(h.side for h in result.hands) == ["left", "right"]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("kind", ["noise", "gradient", "shapes0", "shapes1", "shapes2", "masked_woman"])
def test_no_hand_is_invented(fresh, woman, woman_hands, kind, source):
    rng = np.random.default_rng(7)
    images = {
        "noise": lambda: rng.integers(0, 256, (480, 640, 3), np.uint8),
        "gradient": lambda: np.dstack([np.tile(np.linspace(0, 255, 640), (480, 1))] * 3).astype(np.uint8),
        "masked_woman": lambda: _mask(woman, [d.keypoints_2d for d in woman_hands.values()]),
    }
    image = images[kind]() if kind in images else _random_shapes(int(kind[-1]))
    fresh.update(proposal_source=source)
    result = fresh.process(image)
    assert "proposals" in result.timing_ms
    assert result.hands == []


def test_proposals_off_and_video_interval(fresh, woman, woman_hands):
    one_hand = _mask(woman, [woman_hands["left"].keypoints_2d])
    fresh.update(roi_proposals=False)
    result = fresh.process(one_hand)
    assert "proposals" not in result.timing_ms and [h.side for h in result.hands] == ["right"]
    fresh.update(roi_proposals=True, mode="video", proposal_interval_frames=3)
    fresh.reset()
    ran = ["proposals" in fresh.process(one_hand).timing_ms for _ in range(FRAMES_IN_VIDEO_TEST)]
    assert ran == [i % 3 == 0 for i in range(FRAMES_IN_VIDEO_TEST)]


# ---- the palm source (palm_proposals.py) -------------------------------------------------------------------------

@pytest.mark.parametrize("width,height", [(334, 512), (512, 334), (640, 480), (1280, 720), (1920, 1080), (40, 30)])
def test_palm_tiles_are_squares_of_the_short_side_covering_the_image(width, height):
    tiles = pp.palm_tiles(width, height)
    assert len(tiles) == pp.MAX_PALM_TILES
    covered = np.zeros((height, width), bool)
    for x0, y0, side in tiles:
        assert side == min(width, height)
        assert 0 <= x0 and 0 <= y0 and x0 + side <= width and y0 + side <= height
        covered[y0:y0 + side, x0:x0 + side] = True
    assert covered.all()  # every aspect ratio up to 2:1 is covered by the two squares


def test_palm_tiles_none_for_a_square_image_and_bounded_for_a_strip():
    assert pp.palm_tiles(300, 300) == []
    tiles = pp.palm_tiles(4000, 100)
    assert len(tiles) == pp.MAX_PALM_TILES and tiles[0][0] == 0 and tiles[-1][0] + 100 == 4000


def test_normalised_look_stretches_a_dim_frame_and_averages_noise_away():
    rng = np.random.default_rng(3)
    scene = np.zeros((720, 1280, 3), np.float32)
    scene[:, 640:] = 200.0  # a bright right half
    dim_noisy = np.clip(scene * 0.15 + rng.normal(0.0, 12.0, scene.shape), 0, 255).astype(np.uint8)
    look, scale_x, scale_y = pp.normalised_look(dim_noisy, 0.15)
    assert look.shape == (108, 192, 3) and look.dtype == np.uint8
    assert (scale_x, scale_y) == pytest.approx((192 / 1280, 108 / 720))
    left, right = look[:, 10:86].astype(np.float32), look[:, 106:182].astype(np.float32)
    assert right.mean() > 200 and left.mean() < 40  # the range is filled again
    bilinear = cv2.resize(dim_noisy, (192, 108), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    assert right.std() * (30.0 / 255.0) < 0.5 * bilinear[:, 106:182].std()  # noise, in the original's units


@pytest.mark.parametrize("width,height,out_w,out_h",
                         [(1280, 720, 341, 192), (1283, 723, 160, 90), (335, 513, 192, 294), (640, 480, 96, 72)])
def test_shrink_keeps_points_where_its_scales_say(width, height, out_w, out_h):
    # A bright blob at a known image point lands, in the shrunk image, where (p + 0.5) * scale - 0.5 puts it, also
    # when halvings leave out an odd last row or column.
    image = np.zeros((height, width), np.uint8)
    cx, cy = 0.61 * width, 0.37 * height
    cv2.circle(image, (round(cx * 16), round(cy * 16)), 16 * 12, 255, -1, cv2.LINE_AA, shift=4)
    small, scale_x, scale_y = pp.shrink(image, out_w, out_h)
    assert small.shape == (out_h, out_w)
    moments = cv2.moments(small.astype(np.float32))
    found = (moments["m10"] / moments["m00"], moments["m01"] / moments["m00"])
    expected = ((cx + 0.5) * scale_x - 0.5, (cy + 0.5) * scale_y - 0.5)
    assert found == pytest.approx(expected, abs=0.05)


def test_palm_candidates_map_back_to_the_image_and_skip_found_hands(fresh, woman, woman_hands):
    for detector_side in ("left", "right"):
        truth = woman_hands[detector_side].keypoints_2d
        rois = pp.palm_candidates(fresh.palm, woman, [], 4)
        assert rois and len(rois) <= 4
        # some candidate is centred on this hand (its palm, within a third of the hand's ROI side)
        limit = landmarks_to_roi(truth).width / 3.0
        assert min(math.hypot(r.cx - truth[[0, 5, 9, 13, 17]].mean(0)[0], r.cy - truth[[0, 5, 9, 13, 17]].mean(0)[1])
                   for r in rois) < limit
    found = [pp.palm_candidates(fresh.palm, woman, [], 1)[0]]
    assert all(rp.roi_iou(r, found[0]) < pp.CANDIDATE_IOU for r in pp.palm_candidates(fresh.palm, woman, found, 4))


def _recording_estimator(pipeline, monkeypatch) -> list[int]:
    """Crops per landmark call of the pipeline from now on (appended to the returned list)."""
    sizes: list[int] = []
    estimate = pipeline.landmarks.estimate

    def recording(image, rois):
        sizes.append(len(rois))
        return estimate(image, rois)

    monkeypatch.setattr(pipeline.landmarks, "estimate", recording)
    return sizes


def _palm_calls(pipeline, monkeypatch) -> list[int]:
    """Palm network calls of the pipeline from now on (one entry each)."""
    calls: list[int] = []
    run_filled = pipeline.palm.backend.run_filled

    def recording(batch, fill):
        calls.append(batch)
        return run_filled(batch, fill)

    monkeypatch.setattr(pipeline.palm.backend, "run_filled", recording)
    return calls


def test_palm_source_finds_both_hands_the_detector_misses_with_few_crops(fresh, interhand_dir, monkeypatch):
    # image69148: two hands in contact, the palm detector finds neither; the grid judges 34+ crops to find both.
    from hand_recon_ros.evaluation.interhand import load_interhand

    (sample,) = [s for s in load_interhand(interhand_dir) if s.image_path.name == "image69148.jpg"]
    image = _rgb(sample.image_path)
    assert fresh.palm.detect(image, fresh.config.min_detection_score) == []
    fresh.update(proposal_source="palm")
    sizes = _recording_estimator(fresh, monkeypatch)
    palm_calls = _palm_calls(fresh, monkeypatch)
    result = fresh.process(image)
    assert "proposals" in result.timing_ms
    # The frame's own palm call and landmark call (0 ROIs: no palm), the proposals' whole look and two tiles, then
    # the first proposal pass (the crop budget, at least the two missing hands), then at most PALM_REFINE_PASSES
    # re-crops of at most the two missing hands.
    assert len(palm_calls) == 1 + 1 + pp.MAX_PALM_TILES
    assert sizes[0] == 0 and sizes[1] == max(fresh.config.proposal_crops, 2)
    assert len(sizes) - 2 <= rp.PALM_REFINE_PASSES and max(sizes[2:], default=0) <= 2
    for hand in result.hands:
        truth = sample.hand(hand.side)
        assert truth is not None
        error = np.linalg.norm(hand.detection.keypoints_2d - truth.keypoints_2d, axis=1)[truth.valid].mean()
        assert error < 20.0, f"{hand.side}: {error:.1f} px"
    assert sorted(h.side for h in result.hands) == ["left", "right"]


@pytest.mark.parametrize("keep", ["left", "right"])
def test_palm_source_finds_the_clasped_partner_of_a_found_hand(fresh, interhand_dir, keep):
    # image69148, two hands in contact: with one of them found (as when it is tracked in video mode), the palm
    # source finds the other one, which overlaps it (a stricter "that is the found hand again" rule loses it).
    image = _rgb(interhand_dir / "image69148.jpg")
    fresh.update(proposal_source="palm")
    hands = {h.side: h.detection.keypoints_2d for h in fresh.process(image).hands}
    assert sorted(hands) == ["left", "right"]
    other = "right" if keep == "left" else "left"
    found = [(landmarks_to_roi(hands[keep]), hands[keep])]
    (proposal,) = rp.propose_hands(fresh.landmarks, image, found, 1, 0.5, fresh.palm, fresh.config.proposal_crops)
    error = float(np.linalg.norm(proposal.output.keypoints_2d - hands[other], axis=1).mean())
    assert error < 0.05 * landmarks_to_roi(hands[other]).width


@pytest.fixture(scope="module")
def video_frames(shared_data_dir):
    """Some frames of the shared hand video (one right hand, 1280x720), RGB, by index."""
    path = shared_data_dir / "video" / "right_hand_motion.mp4"
    if not path.is_file():
        missing(f"{path} not present")
    capture, frames, index = cv2.VideoCapture(str(path)), {}, 0
    while index <= max(DIM_FRAMES + NOISY_FRAMES + NOISY_RUN):
        ok, frame = capture.read()
        assert ok, f"{path}: cannot read frame {index}"
        if index in DIM_FRAMES + NOISY_FRAMES + NOISY_RUN:
            frames[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        index += 1
    return frames


def _found_alone(result, truth: np.ndarray) -> float:
    """The one hand of ``result`` (asserted) and its mean keypoint distance to ``truth`` as a fraction of its ROI."""
    assert len(result.hands) == 1, [h.side for h in result.hands]
    error = float(np.linalg.norm(result.hands[0].detection.keypoints_2d - truth, axis=1).mean())
    return error / landmarks_to_roi(truth).width


@pytest.mark.parametrize("index", DIM_FRAMES)
def test_palm_source_finds_the_hand_in_a_dim_frame_the_detector_misses(fresh, video_frames, index):
    # A video frame darkened to 15 %: the frame's own palm pass finds nothing; the normalised look (contrast
    # stretch) finds the hand, close to the clean frame's landmarks, and nothing else.
    clean = video_frames[index]
    (hand,) = fresh.process(clean).hands
    dark = (clean.astype(np.float32) * 0.15).astype(np.uint8)
    assert fresh.palm.detect(dark, fresh.config.min_detection_score) == []
    result = fresh.process(dark)
    assert "proposals" in result.timing_ms
    assert _found_alone(result, hand.detection.keypoints_2d) < 0.05


@pytest.mark.parametrize("index", NOISY_FRAMES)
def test_palm_source_finds_the_hand_in_a_noisy_frame_the_detector_misses(fresh, video_frames, index):
    # A video frame with sensor noise (sigma 40): the frame's own palm pass finds nothing; the area-averaged look
    # finds the hand, close to the clean frame's landmarks, and nothing else.
    clean = video_frames[index]
    (hand,) = fresh.process(clean).hands
    noise = np.random.default_rng(index).normal(0.0, 40.0, clean.shape)
    noisy = np.clip(clean.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    assert fresh.palm.detect(noisy, fresh.config.min_detection_score) == []
    result = fresh.process(noisy)
    assert "proposals" in result.timing_ms
    assert _found_alone(result, hand.detection.keypoints_2d) < 0.05


def test_video_mode_tracks_a_hand_in_noisy_video_that_only_the_proposals_find(fresh, video_frames):
    # Five consecutive video frames with sensor noise, in video mode: without proposals no frame has the hand (the
    # palm pass never fires); with the palm source it is found on the first frame and tracked on every one after,
    # as one track (no further proposal frame is due within proposal_interval_frames, 30).
    frames = []
    for index in NOISY_RUN:
        noise = np.random.default_rng(index).normal(0.0, 40.0, video_frames[index].shape)
        frames.append(np.clip(video_frames[index].astype(np.float32) + noise, 0, 255).astype(np.uint8))
    fresh.update(mode="video", roi_proposals=False)
    fresh.reset()
    assert [len(fresh.process(f, timestamp_s=i / 30).hands) for i, f in enumerate(frames)] == [0] * len(frames)
    fresh.update(roi_proposals=True, proposal_source="palm")
    fresh.reset()
    results = [fresh.process(f, timestamp_s=i / 30) for i, f in enumerate(frames)]
    assert [len(r.hands) for r in results] == [1] * len(frames)
    assert ["proposals" in r.timing_ms for r in results] == [True] + [False] * (len(frames) - 1)
    assert len({r.hands[0].detection.track_id for r in results}) == 1


def test_palm_source_finds_the_one_hand_with_the_detector_blind(fresh, woman, woman_hands, monkeypatch):
    # woman_hands.jpg with the left hand painted out and the full-frame detector made blind: the palm source's own
    # low threshold still finds the right hand, invents no second one, and judges few crops.
    image = _mask(woman, [woman_hands["left"].keypoints_2d])
    fresh.update(proposal_source="palm", min_detection_score=1.0)
    sizes = _recording_estimator(fresh, monkeypatch)
    try:
        result = fresh.process(image)
    finally:
        fresh.update(min_detection_score=0.5)
    assert [h.side for h in result.hands] == ["right"]
    assert sum(sizes) <= max(fresh.config.proposal_crops, 2) + rp.PALM_REFINE_PASSES * 2


# ---- settings and backend options ---------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("roi_proposals", 1), ("proposal_interval_frames", 0), ("proposal_interval_frames", True),
    ("proposal_interval_frames", 2.0), ("precision", "fp8"), ("engine_cache_dir", ""),
    ("proposal_source", "tiles"), ("proposal_crops", 0), ("proposal_crops", True), ("proposal_crops", 6.0),
])
def test_new_settings_are_validated(field, value):
    with pytest.raises(ConfigError, match=field):
        PipelineConfig(**{field: value}).validate()


def test_backend_options_cover_the_proposal_batch(tmp_path):
    options = backend_options(PipelineConfig(precision="fp32", max_hands=3, intra_op_threads=1))
    assert set(options) <= set(KNOWN_OPTIONS)
    assert options["max_batch"] >= rp.MAX_PROPOSAL_BATCH and options["opt_batch"] == 3
    assert options["precision"] == "fp32" and "cache_dir" not in options
    options = backend_options(PipelineConfig(engine_cache_dir=str(tmp_path)))
    assert options["cache_dir"] == str(tmp_path)


def test_pipeline_builds_with_every_option(model_paths, woman, tmp_path):
    config = PipelineConfig(mode="image", refine_3d=False, precision="fp32", engine_cache_dir=str(tmp_path))
    pipe = HandPipeline(config)
    try:
        assert sorted(h.side for h in pipe.process(woman).hands) == ["left", "right"]
    finally:
        pipe.close()


def test_node_precision_parameter_reaches_the_pipeline_config():
    from hand_recon_ros.ros.parameters import PARAMETERS, pipeline_settings

    values = {spec.name: spec.default for spec in PARAMETERS}
    values["precision"] = "int8"
    settings = pipeline_settings(values, PipelineConfig.field_names())
    assert settings["precision"] == "int8" and settings["calib_dir"] is None  # '' = none
    with pytest.raises(ConfigError, match="precision int8 needs calib_dir"):
        PipelineConfig(**settings).validate()
    values["calib_dir"] = "/data/calibration_frames"
    settings = pipeline_settings(values, PipelineConfig.field_names())
    assert settings["calib_dir"] == "/data/calibration_frames"
    PipelineConfig(**settings).validate()


def _tensorrt_usable(onnx_path: Path) -> bool:
    """True when the TensorRT backend loads here (then 'missing TensorRT' cannot be tested)."""
    from hand_recon_ros.engines.base import BackendUnavailableError
    from hand_recon_ros.engines.registry import create_backend

    try:
        create_backend("tensorrt", onnx_path).load().close()
    except BackendUnavailableError:
        return False
    return True


@pytest.mark.parametrize("command", ["run", "bench"])
@pytest.mark.parametrize("backend,message", [("nope", "unknown backend 'nope'"), ("tensorrt", "tensorrt")])
def test_missing_or_unknown_backend_is_one_line_and_exit_2(model_paths, woman_hands_path, tmp_path, caplog, capsys,
                                                           command, backend, message):
    from hand_recon_ros.cli import main

    if backend == "tensorrt" and _tensorrt_usable(model_paths.palm_onnx):
        pytest.skip("TensorRT is installed and usable here")

    extra = ["-o", str(tmp_path / "out.jsonl"), "--quiet"] if command == "run" else ["--repeat", "1", "--warmup", "0"]
    assert main([command, str(woman_hands_path), "--backend", backend, *extra]) == 2
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0].getMessage()
    assert "Traceback" not in capsys.readouterr().err


def test_cli_switch_turns_proposals_off(model_paths, interhand_dir, tmp_path):
    import json

    from hand_recon_ros.cli import main

    hands = {}
    for flag in ([], ["--no-roi-proposals"]):
        out = tmp_path / f"out{len(flag)}.jsonl"
        assert main(["run", str(interhand_dir / "image2017.jpg"), "-o", str(out), "--quiet", *flag]) == 0
        (record,) = [json.loads(line) for line in out.read_text().splitlines()]
        hands[bool(flag)] = record
    # The palm detector sees no hand in this close-up; the proposals find the one annotated right hand.
    assert hands[True]["hands"] == [] and "proposals" not in hands[True]["timing_ms"]
    assert [h["side"] for h in hands[False]["hands"]] == ["right"]


@pytest.mark.parametrize("source", SOURCES)
def test_cli_proposal_source_finds_the_close_up_hand(model_paths, interhand_dir, tmp_path, source):
    import json

    from hand_recon_ros.cli import main

    out = tmp_path / "out.jsonl"
    assert main(["run", str(interhand_dir / "image2017.jpg"), "-o", str(out), "--quiet",
                 "--proposal-source", source]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert [h["side"] for h in record["hands"]] == ["right"] and "proposals" in record["timing_ms"]
