"""Tests for facetraits.regions on a synthetic 68-point face (no TensorFlow, no images)."""
import numpy as np
import pytest

from conftest import synthetic_face
from facetraits.landmarks import scale_landmarks
from facetraits.alignment import ALIGN_POINTS, apply_transform, mean_face, similarity_transform, warp_to_template
from facetraits.regions import REGIONS, per_unit_area, region_masks, relevance_shares


def pixel(point):
    """(row, col) of the pixel nearest to an (x, y) point."""
    return int(round(point[1])), int(round(point[0]))


@pytest.fixture
def face():
    return synthetic_face(128)


@pytest.fixture
def masks(face):
    return region_masks(face, (128, 128), (128, 128))


def test_masks_are_exclusive_and_cover_the_map(masks):
    assert tuple(masks) == REGIONS
    stacked = np.stack([masks[name] for name in REGIONS]).astype(int)
    assert stacked.dtype == int and masks["eyes"].dtype == bool
    assert np.all(stacked.sum(axis=0) == 1)


def test_regions_are_non_empty_and_in_place(face, masks):
    for name in REGIONS:
        assert masks[name].any(), name
    for eye in (face[36:42], face[42:48]):
        assert masks["eyes"][pixel(eye.mean(axis=0))]
    for brow in (face[17:22], face[22:27]):
        assert masks["brows"][pixel(brow[2])]
    assert masks["mouth"][pixel(face[48:60].mean(axis=0))]
    assert masks["nose"][pixel(face[30])]  # nose tip
    assert masks["jaw"][pixel(face[8] + [0, -3])]  # chin, just above the jaw point
    assert masks["jaw"][pixel(face[8] + [0, 3])]  # and just below it: the outline's edge
    assert not masks["jaw"][pixel(face[0])]  # the jaw band starts below the ear
    assert masks["forehead"][pixel(face[[17, 26]].mean(axis=0) + [0, -12])]
    assert masks["cheeks"][pixel(face[[2, 31]].mean(axis=0))]
    assert masks["cheeks"][pixel(face[[14, 35]].mean(axis=0))]
    assert masks["face"].any()  # what is left: temples, between chin band and mouth
    for corner in ((0, 0), (0, 127), (127, 0), (127, 127)):
        assert masks["background"][corner]
    # Rough sizes: parts are small, face is the biggest, eyes lie above the mouth.
    area = {name: masks[name].mean() for name in REGIONS}
    assert area["cheeks"] > max(area["eyes"], area["brows"], area["nose"], area["mouth"])
    assert np.nonzero(masks["eyes"])[0].mean() < np.nonzero(masks["mouth"])[0].mean()


def test_landmarks_of_a_larger_image_are_scaled_to_the_map():
    big = region_masks(synthetic_face(256), (256, 256), (128, 128))
    small = region_masks(synthetic_face(128), (128, 128), (128, 128))
    for name in REGIONS:
        intersection = (big[name] & small[name]).sum()
        union = (big[name] | small[name]).sum()
        assert intersection / union > 0.85, name
    face_128 = scale_landmarks(synthetic_face(256), (256, 256), (128, 128))
    assert big["mouth"][pixel(face_128[48:60].mean(axis=0))]
    assert big["eyes"][pixel(face_128[36:42].mean(axis=0))]


def test_non_square_scaling_uses_width_and_height_separately():
    # Original 200 wide x 100 high; x shrinks by 0.5, y is unchanged onto a 100x100 map.
    face = synthetic_face(100) * [2.0, 1.0] + [0.5, 0.0]  # pixel-centre-correct stretch
    scaled = scale_landmarks(face, (200, 100), (100, 100))
    np.testing.assert_allclose(scaled, synthetic_face(100), atol=1e-9)
    masks = region_masks(face, (200, 100), (100, 100))
    assert masks["eyes"][pixel(synthetic_face(100)[36:42].mean(axis=0))]


def test_face_at_the_edge_is_clipped_not_an_error():
    masks = region_masks(synthetic_face(128, shift=(-50, 0)), (128, 128), (128, 128))
    stacked = np.stack([masks[name] for name in REGIONS])
    assert np.all(stacked.sum(axis=0) == 1)
    assert masks["eyes"].any()


def test_bad_landmarks_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        region_masks(np.zeros((5, 2)), (128, 128), (128, 128))
    face = synthetic_face()
    face[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        region_masks(face, (128, 128), (128, 128))


def test_shares_sum_to_one(masks):
    rng = np.random.default_rng(0)
    relevance = rng.normal(size=(128, 128))
    shares = relevance_shares(relevance, masks)
    for key in ("share_pos", "share_abs", "area_share"):
        assert sum(shares[name][key] for name in REGIONS) == pytest.approx(1.0)
    for name in REGIONS:
        s = shares[name]
        assert s["pos_per_area"] == pytest.approx(s["share_pos"] / s["area_share"])


def test_relevance_only_on_the_mouth(masks):
    relevance = masks["mouth"].astype(float)
    shares = relevance_shares(relevance, masks)
    assert shares["mouth"]["share_pos"] == pytest.approx(1.0)
    assert shares["mouth"]["share_abs"] == pytest.approx(1.0)
    assert shares["eyes"]["share_pos"] == 0.0
    assert shares["mouth"]["pos_per_area"] == pytest.approx(1.0 / shares["mouth"]["area_share"])


def test_negative_relevance_counts_only_in_share_abs(masks):
    relevance = masks["mouth"] * 1.0 - masks["eyes"] * 1.0
    shares = relevance_shares(relevance, masks)
    assert shares["mouth"]["share_pos"] == pytest.approx(1.0)
    assert shares["eyes"]["share_pos"] == 0.0
    n_mouth, n_eyes = masks["mouth"].sum(), masks["eyes"].sum()
    assert shares["eyes"]["share_abs"] == pytest.approx(n_eyes / (n_mouth + n_eyes))
    assert shares["mouth"]["share_abs"] == pytest.approx(n_mouth / (n_mouth + n_eyes))


def test_zero_relevance_gives_nan_shares(masks):
    shares = relevance_shares(np.zeros((128, 128)), masks)
    assert all(np.isnan(shares[name]["share_pos"]) for name in REGIONS)
    assert all(np.isnan(shares[name]["share_abs"]) for name in REGIONS)
    assert sum(shares[name]["area_share"] for name in REGIONS) == pytest.approx(1.0)
    # Only-negative relevance: no positive total, but an absolute one.
    shares = relevance_shares(-masks["nose"].astype(float), masks)
    assert np.isnan(shares["nose"]["share_pos"])
    assert shares["nose"]["share_abs"] == pytest.approx(1.0)


def test_shares_reject_mismatched_shapes(masks):
    with pytest.raises(ValueError, match="shape"):
        relevance_shares(np.ones((64, 64)), masks)


def test_per_unit_area():
    assert per_unit_area(0.4, 0.1) == pytest.approx(4.0)
    assert np.isnan(per_unit_area(0.0, 0.0))


def rotation_scale(angle_deg, scale):
    a = np.deg2rad(angle_deg)
    return scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(20, 2))
    linear = rotation_scale(25.0, 1.3)
    translation = np.array([5.0, -7.0])
    dst = src @ linear.T + translation
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], linear, atol=1e-10)
    np.testing.assert_allclose(matrix[:, 2], translation, atol=1e-8)
    np.testing.assert_allclose(apply_transform(matrix, src), dst, atol=1e-8)


def test_similarity_transform_never_reflects():
    src = synthetic_face()
    mirrored = src * [-1.0, 1.0]
    matrix = similarity_transform(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def blob(shape, centre, sigma=2.0):
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.exp(-((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2) / (2 * sigma**2))


def test_warp_moves_a_blob_at_a_landmark_to_the_template():
    template = synthetic_face(128)
    centre = template[ALIGN_POINTS, :].mean(axis=0)
    # This face: the template rotated by 10 degrees, shrunk to 0.8 and shifted.
    face = (template - centre) @ rotation_scale(10.0, 0.8).T + centre + [6.0, -4.0]
    heatmap = blob((128, 128), face[30])  # blob on the nose tip of this face
    warped = warp_to_template(heatmap, face, template)
    assert warped.shape == (128, 128)
    peak = np.unravel_index(np.argmax(warped), warped.shape)
    assert abs(peak[0] - template[30, 1]) <= 1 and abs(peak[1] - template[30, 0]) <= 1
    # Shrinking the face 0.8x means the template face needs pixels from outside: filled with 0.
    assert warp_to_template(np.ones((128, 128)), face, template).min() == 0.0


def test_warp_with_identical_landmarks_is_identity():
    face = synthetic_face(64)
    heatmap = np.random.default_rng(2).normal(size=(64, 64))
    np.testing.assert_allclose(warp_to_template(heatmap, face, face), heatmap, atol=1e-9)


def test_mean_face_of_transformed_copies_is_the_upright_face():
    face = synthetic_face(128)
    centre = face.mean(axis=0)
    copies = [
        (face - centre) @ rotation_scale(angle, scale).T + centre + shift
        for angle, scale, shift in ((0, 1.0, (0, 0)), (8, 1.1, (3, 2)), (-6, 0.9, (-3, -2)))
    ]
    result = mean_face(copies)
    assert result.shape == (68, 2)
    # Same shape up to the (identity here) similarity: the synthetic face is upright already.
    matrix = similarity_transform(result[list(ALIGN_POINTS)], face[list(ALIGN_POINTS)])
    np.testing.assert_allclose(apply_transform(matrix, result), face, atol=1e-6)
    eye_axis = result[42:48].mean(axis=0) - result[36:42].mean(axis=0)
    assert abs(eye_axis[1]) < 1e-9  # upright
    np.testing.assert_allclose(matrix[:, :2], np.eye(2), atol=1e-6)  # mean size, mean centre


def test_mean_face_averages_shapes():
    a = synthetic_face(128)
    b = a.copy()
    b[48:60, 1] += 4.0  # lower mouth (not an alignment point except the corners)
    result = mean_face([a, b], points=[36, 39, 42, 45, 27, 30])
    np.testing.assert_allclose(result[48:60, 1] - a[48:60, 1], 2.0, atol=0.05)


def test_overlapping_regions_go_to_the_higher_priority(face, masks):
    """eyes > brows > mouth > nose > jaw > forehead > cheeks > face: the jaw band's inner edge lies in the
    cheek polygons, and brows drawn on the upper lids leave the lids to the eyes."""
    for point in (4, 12):
        inside = face[point] + 0.05 * (face[30] - face[point])
        assert masks["jaw"][pixel(inside)]
    low_brows = face.copy()
    low_brows[17:22], low_brows[22:27] = face[[36, 37, 38, 39, 39]], face[[42, 43, 44, 45, 45]]
    lids = region_masks(low_brows, (128, 128), (128, 128))
    assert all(lids["eyes"][pixel(face[k])] for k in (37, 38, 43, 44))


def test_mean_face_is_upright_of_mean_size_and_centre_whatever_the_first_face():
    """The first face (the Procrustes frame) is tilted, shrunk and shifted, the copies' mean is not the
    first face: the template must still be upright (not tilted twice over), of the faces' mean size
    and at their mean centre."""
    face = synthetic_face(128)
    idx = list(ALIGN_POINTS)
    centre = face[idx].mean(axis=0)
    copies = [(face - centre) @ rotation_scale(angle, scale).T + centre + shift
              for angle, scale, shift in ((12, 0.8, (5, -3)), (0, 1.0, (0, 0)), (4, 1.3, (2, 9)))]
    result = mean_face(copies)
    eye_axis = result[42:48].mean(axis=0) - result[36:42].mean(axis=0)
    assert abs(eye_axis[1]) < 1e-9 and eye_axis[0] > 0

    def size(points):
        return np.sqrt(((points[idx] - points[idx].mean(axis=0)) ** 2).sum(axis=1).mean())
    assert size(result) == pytest.approx(np.mean([size(c) for c in copies]))
    np.testing.assert_allclose(result[idx].mean(axis=0), np.mean([c[idx].mean(axis=0) for c in copies], axis=0))


def test_similarity_transform_of_mirrored_points_has_the_least_squares_scale():
    """No reflection allowed: for the best rotation R the least-squares scale is
    sum(dst_c . R src_c) / sum |src_c|^2 (Umeyama's trace(D S) / var, S flipping the last axis)."""
    rng = np.random.default_rng(4)
    src = rng.uniform(0, 100, size=(30, 2)) * [1.0, 0.4]
    dst = src * [-1.0, 1.0] + [200.0, 5.0]
    matrix = similarity_transform(src, dst)
    scale = np.sqrt(np.linalg.det(matrix[:, :2]))
    rotation = matrix[:, :2] / scale
    src_c, dst_c = src - src.mean(axis=0), dst - dst.mean(axis=0)
    assert scale == pytest.approx((dst_c * (src_c @ rotation.T)).sum() / (src_c ** 2).sum(), rel=1e-9)
    assert scale < 1.0  # x and y spreads differ: a mirror image cannot be matched at full size
