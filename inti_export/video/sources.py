"""`stream` sources: what SOURCE names and how PyAV opens it (docs/stream.md, "Sources").

    parse_source("rtsp://cam/1", av_options={"rtsp_transport": "udp"}) -> Source(kind="url", ...)
    open_source(source, timeout_s=10) -> the opened PyAV container, first video stream checked

Kinds: `file` (a path), `url` (`http(s)://`, `rtsp://`, `udp://`, `tcp://`, any FFmpeg protocol), `lavfi`
(`lavfi:GRAPH`, or a bare graph), `device` (a V4L2 device `/dev/videoN`, format `v4l2`) and `pipe` (`-`:
standard input, e.g. `ffmpeg ... -f mpegts - | inti-export stream - ...`). Every kind but `file` is live.
`--av-option k=v` goes to `av.open(options=...)` as is (FFmpeg's demuxer and protocol options); `--format`
forces the demuxer. An `rtsp://` URL reads over TCP unless `rtsp_transport` says otherwise.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from inti_export.errors import VideoError, one_line

LAVFI_PREFIX = "lavfi:"
PIPE = "-"
DEVICE_PREFIX = "/dev/video"
DEFAULT_TIMEOUT_S = 10.0
SOURCE_KINDS = ("file", "url", "lavfi", "device", "pipe")


@dataclass(frozen=True)
class Source:
    """Where frames come from: `kind` (SOURCE_KINDS), what av.open gets (`url`, `fmt`, `options`)."""

    text: str
    kind: str
    url: str
    fmt: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        """The source sets the pace (everything but a file)."""
        return self.kind != "file"

    @property
    def network(self) -> bool:
        return self.kind == "url"


def parse_av_options(pairs: Iterable[str]) -> dict[str, str]:
    """`["rtsp_transport=udp", "probesize=32"]` -> a dict; a pair without `=` is a one-line VideoError."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise VideoError(f"--av-option {pair!r} is not KEY=VALUE; write e.g. --av-option rtsp_transport=udp")
        options[key.strip()] = value
    return options


def parse_source(text: str, fmt: str | None = None, av_options: dict[str, str] | None = None) -> Source:
    """SOURCE as given on the command line -> Source, or a one-line VideoError."""
    options = dict(av_options or {})
    fmt = fmt or options.pop("format", None) or options.pop("f", None)
    if text == PIPE:
        return Source(text, "pipe", PIPE, fmt, options)
    if text.startswith(LAVFI_PREFIX):
        return Source(text, "lavfi", text[len(LAVFI_PREFIX):], "lavfi", options)
    if text.startswith(DEVICE_PREFIX):
        return Source(text, "device", text, fmt or "v4l2", options)
    if "://" in text:
        if text.lower().startswith(("rtsp://", "rtsps://")):
            options.setdefault("rtsp_transport", "tcp")
        return Source(text, "url", text, fmt, options)
    path = Path(text).expanduser()
    if path.is_file():
        return Source(text, "file", str(path), fmt, options)
    if "=" in text and "/" not in text:  # a filter graph such as testsrc2=size=64x64:rate=25
        return Source(text, "lavfi", text, "lavfi", options)
    raise VideoError(f"source {text!r} is not a file, a URL (scheme://...), a lavfi graph (lavfi:GRAPH),"
                     " a V4L2 device (/dev/videoN) or - (standard input); check the path")


def _open_options(source: Source, timeout_s: float) -> dict[str, str]:
    options = dict(source.options)
    if "listen" in options.get("rtsp_flags", "") and "listen_timeout" not in options:
        # FFmpeg's default listen_timeout (-1 s) becomes -1000 ms in listen mode and is refused as out of range
        options["listen_timeout"] = str(max(1, math.ceil(timeout_s)))
    return options


def open_source(source: Source, timeout_s: float = DEFAULT_TIMEOUT_S):
    """The opened PyAV container (first video stream checked); one-line VideoError within about `timeout_s`."""
    import av

    kwargs: dict = {"options": _open_options(source, timeout_s)}
    if source.fmt is not None:
        kwargs["format"] = source.fmt
    if source.kind in ("url", "device"):
        kwargs["timeout"] = (timeout_s, timeout_s)  # (open, read), seconds
    target = sys.stdin.buffer if source.kind == "pipe" else source.url
    try:
        container = av.open(target, **kwargs)
    except av.ExitError as e:
        raise VideoError(f"cannot open {source.text}: no answer within {timeout_s:g} s; check the address and the sender") from e
    except (av.FFmpegError, OSError, ValueError) as e:
        hint = "; check the device and its --av-option settings" if source.kind == "device" else "; check the path or address"
        raise VideoError(f"cannot open {source.text}: {one_line(e)}{hint}") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"{source.text} has no video stream; pass a source with video")
    return container
