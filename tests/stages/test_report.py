"""The report stage's note on FID: the image path into Inception (eval.fid.preprocessing) of the runs that have FID,
the reason of those that do not."""
from __future__ import annotations

from pae.eval.fid import protocol
from pae.io import write_json
from pae.stages.report import _fid_note


def _run(tmp_path, name, fid, preprocessing="pytorch", reason=None):
    path = tmp_path / f"{name}.json"
    write_json(path, {"fid": fid, "fid_unavailable": reason,
                      "protocol": {"image_conversion": {"fid": protocol(preprocessing)}}})
    return {"run": name, "files": {"fid": str(path)}}


def test_the_fid_note_names_the_preprocessing_and_the_runs_without_fid(tmp_path):
    value = {"pae_T1.0": {"value": 30.0}}
    z32 = _run(tmp_path, "fm-ae-z32-s0", value, preprocessing="tensorflow")
    z64 = _run(tmp_path, "fm-ae-z64-s0", None, reason="eval.fid.inception is never")
    assert _fid_note([z32]) == f"FID was computed for every run; images into Inception: {protocol('tensorflow')}."
    assert "as TensorFlow 1's ResizeBilinear" in protocol("tensorflow")
    note = _fid_note([z32, z64])
    assert "FID was computed for fm-ae-z32-s0; images into Inception: uint8 p; 1 channel" in note
    assert note.endswith("FID was not computed for fm-ae-z64-s0: eval.fid.inception is never")
    assert _fid_note([z64]) == "FID was not computed for any run: eval.fid.inception is never"
    assert "pytorch-fid's InceptionV3 resizes" in _fid_note([_run(tmp_path, "a", value)])
