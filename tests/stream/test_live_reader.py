"""FrameReader: a consumer slower than the source drops the oldest frames (counted) and the session never spans the gaps."""

from __future__ import annotations

import time

from inti_export.runtime.stream import StreamSession, TorchStemHead
from inti_export.video.live import FrameReader, parse_source
from inti_export.video.preprocess import preprocess_for


def test_drop_latest_counts_drops_and_gaps(tiny_model):
    source = parse_source("lavfi:testsrc2=size=64x64:rate=200,realtime")
    reader = FrameReader(source, preprocess_for(tiny_model.cfg), max_queue=2, drop="latest", duration_s=0.5)
    session = StreamSession(TorchStemHead(tiny_model), 1)
    indices, results = [], []
    for frame in reader.frames():
        indices.append(frame.index)
        if (r := session.push(frame)) is not None:
            results.append(r)
        time.sleep(0.02)  # 50 frames/s against a 200 frames/s source
    reader.close()
    stats = reader.stats
    assert stats.dropped > 20 and stats.sampled == len(indices) + stats.dropped
    assert indices == sorted(indices) and session.dropped == stats.dropped and session.gaps
    assert all(r.last_frame - r.first_frame == 7 for r in results)
    for r in results:  # every window's frames arrived, one after another
        assert set(range(r.first_frame, r.last_frame + 1)) <= set(indices)
