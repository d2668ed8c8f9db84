"""Captions of image grids: wrapped to their cell without cutting names or file names."""
from carbrands.plots import wrap_caption


def test_brand_names_with_hyphens_stay_whole():
    assert wrap_caption("pred: Mercedes-Benz (94%)", 14) == "pred:\nMercedes-Benz\n(94%)"


def test_paths_break_after_a_slash_never_inside_a_file_name():
    wrapped = wrap_caption("train/Ostra-Lind/8d15e692b511c5.jpg\nnear copy, distance 6", 30)
    assert wrapped == "train/Ostra-Lind/\n8d15e692b511c5.jpg\nnear copy, distance 6"


def test_short_lines_and_spaces_after_slashes_are_kept():
    assert wrap_caption("val/Moravia Cars/a.jpg", 40) == "val/Moravia Cars/a.jpg"
    assert wrap_caption("a word longer than the width: abcdefghijklmnop", 10).splitlines()[-1] == "abcdefghijklmnop"
