"""All-or-nothing writes: unique temporary files, long names, nothing left on failure."""

from __future__ import annotations

import threading

import pytest

from inti_export.errors import IntiExportError
from inti_export.fileio import atomic_output, check_output_path, write_atomic


def test_longest_allowed_name_is_written(tmp_path):
    target = tmp_path / ("n" * 250 + ".onnx")  # 255 bytes: the most a Linux file name may have
    write_atomic(target, b"data")
    assert target.read_bytes() == b"data" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_over_long_name_is_refused_before_any_write(tmp_path):
    with pytest.raises(IntiExportError, match="256 bytes, over 255: shorten it"):
        check_output_path(tmp_path / ("n" * 251 + ".onnx"))
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writers_get_their_own_temporary_files(tmp_path):
    target = tmp_path / "m.onnx"
    seen, barrier = [], threading.Barrier(2)

    def writer(data: bytes) -> None:
        with atomic_output(target) as tmp:
            seen.append(tmp)
            barrier.wait(timeout=10)  # both temporary files exist at once
            tmp.write_bytes(data)

    threads = [threading.Thread(target=writer, args=(d,)) for d in (b"one", b"two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 2 and all(p.parent == tmp_path for p in seen)
    assert target.read_bytes() in (b"one", b"two") and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_or_interrupt_leaves_nothing(tmp_path, exc):
    (tmp_path / "m.onnx").write_bytes(b"old")
    with pytest.raises(type(exc)), atomic_output(tmp_path / "m.onnx") as tmp:
        tmp.write_bytes(b"half")
        raise exc
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"] and (tmp_path / "m.onnx").read_bytes() == b"old"


def test_output_that_is_an_input_is_refused(tmp_path):
    src = tmp_path / "m.onnx"
    src.write_bytes(b"x")
    with pytest.raises(IntiExportError, match="is also an input"):
        check_output_path(tmp_path / "." / "m.onnx", "--output", inputs=[src])
    with pytest.raises(IntiExportError, match="is a directory"):
        check_output_path(tmp_path)
    with pytest.raises(IntiExportError, match="does not exist"):
        check_output_path(tmp_path / "no" / "m.onnx")


def test_output_over_an_input_manifest_or_inside_an_input_folder_is_refused(tmp_path):
    src, videos = tmp_path / "m.onnx", tmp_path / "videos"
    src.write_bytes(b"x")
    videos.mkdir()
    with pytest.raises(IntiExportError, match="is the manifest of the input"):
        check_output_path(tmp_path / "m.onnx.json", "--report", inputs=[src])
    with pytest.raises(IntiExportError, match="is inside the input folder"):
        check_output_path(videos / "sub" / ".." / "a.mp4", "--report", folders=[videos])
    assert check_output_path(tmp_path / "r.json", "--report", inputs=[src], folders=[videos, None]).name == "r.json"


def test_output_folder_check(tmp_path):
    from inti_export.fileio import check_output_dir

    (tmp_path / "f").write_text("x")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"  # created later
    with pytest.raises(IntiExportError, match="is a file: give a folder"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(IntiExportError, match="cannot be created: .*f is not a directory"):
        check_output_dir(tmp_path / "f" / "sub")
    with pytest.raises(IntiExportError, match="over 255: shorten it"):
        check_output_dir(tmp_path / ("d" * 256) / "sub")
    assert not (tmp_path / "new").exists()
