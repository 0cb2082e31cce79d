"""How much a staged video or audio file decodes to, probed with PyAV before the run.

ComfyUI decodes every frame of a staged file that PyAV can read: ``LoadImage`` tries PyAV first
(so a long video named ``x.png`` is loaded whole), ``LoadVideo`` and ``LoadAudio`` decode the
file to its end. Both end as float32 tensors: 3 floats a pixel, 1 a sample. So a video stream is
held to ``MAX_INPUT_PIXELS`` pixels, all its frames together (the bound of one input image), and
an audio stream to ``3 x MAX_INPUT_PIXELS`` samples, all channels together: the same memory.

The container's metadata gives a first estimate (frames, or duration x average rate; duration x
sample rate x channels). The job wrote it, so it is checked against the packets: the probe
demuxes (never decodes) up to ``PACKETS`` packets a stream, counting one frame a video packet and
each audio packet's duration. A stream still going past ``PACKETS`` is refused as too long to
measure. Not measured: a stream whose frames grow after the first (the size is the header's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.errors import ErrorType, JobFailed
from worker.message.bounded import clip, echo

PACKETS = 2**18  # a stream's packets the probe demuxes at most (about a second of demuxing)
AUDIO_SAMPLES_PER_PIXEL = 3  # a decoded pixel is 3 float32s, an audio sample 1


def _open(path: Path) -> Any:
    """The container PyAV opens ``path`` as, or None (no PyAV, or not media it reads)."""
    try:
        import av  # type: ignore[import-not-found, unused-ignore]  # ComfyUI's requirement
    except ImportError:
        return None
    try:
        # Local files only: a playlist never makes the probe fetch anything.
        return av.open(str(path), options={"protocol_whitelist": "file"})
    except Exception:  # any reason PyAV can't read it: ComfyUI's loader will say why
        return None


def _seconds(stream: Any, container: Any) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return float(container.duration or 0) / 1_000_000  # av.time_base


def _fail(rel: str, message: str) -> JobFailed:
    return JobFailed(ErrorType.INPUT_ERROR, f"input {echo(rel)} {message}")


class _Video:
    def __init__(self, stream: Any, container: Any, limit: int) -> None:
        self.stream, self.limit = stream, limit
        self.width, self.height = int(stream.width or 0), int(stream.height or 0)
        frames = int(stream.frames or 0)
        if frames <= 0 and stream.average_rate:
            frames = round(_seconds(stream, container) * float(stream.average_rate))
        self.claimed, self.counted = max(frames, 1), 0

    def over(self, frames: int) -> bool:
        return self.width * self.height * frames > self.limit

    def refusal(self, rel: str, kind: str, frames: int, counted: bool) -> JobFailed:
        says = f"at least {frames} frames (its header says {self.claimed})" if counted else ""
        return _fail(
            rel,
            f"is a video ({kind}) of {says or f'{frames} frames'} of {self.width} x "
            f"{self.height} ({self.width * self.height * frames} pixels decoded), over "
            f"MAX_INPUT_PIXELS={self.limit}: send a shorter or smaller clip, or raise "
            "MAX_INPUT_PIXELS",
        )

    def add(self, packet: Any) -> None:
        self.counted += 1


class _Audio:
    def __init__(self, stream: Any, container: Any, limit: int) -> None:
        self.stream, self.limit = stream, limit
        codec = stream.codec_context
        self.rate = int(stream.sample_rate or getattr(codec, "sample_rate", 0) or 0)
        layout = getattr(codec, "layout", None)
        self.channels = max(int(getattr(layout, "nb_channels", 0) or stream.channels or 1), 1)
        self.frame_size = int(getattr(codec, "frame_size", 0) or 0)
        self.claimed = round(_seconds(stream, container) * self.rate)
        self.counted = 0

    def over(self, samples: int) -> bool:
        return samples * self.channels > self.limit

    def refusal(self, rel: str, kind: str, samples: int, counted: bool) -> JobFailed:
        says = f"at least {samples} samples (its header says {self.claimed})" if counted else ""
        return _fail(
            rel,
            f"is audio ({kind}) of {says or f'{samples} samples'} x {self.channels} "
            f"channels ({samples * self.channels} samples decoded, {self.rate} Hz), over "
            f"{AUDIO_SAMPLES_PER_PIXEL} x MAX_INPUT_PIXELS={self.limit} samples (the memory of "
            "the largest input image): send a shorter clip or fewer channels, or raise "
            "MAX_INPUT_PIXELS",
        )

    def add(self, packet: Any) -> None:
        if packet.duration and self.stream.time_base and self.rate:
            self.counted += round(float(packet.duration * self.stream.time_base) * self.rate)
        else:  # no duration: the codec's frame size, else the packet's bytes
            self.counted += self.frame_size or int(packet.size)


def _probes(container: Any, max_pixels: int) -> dict[int, _Video | _Audio]:
    probes: dict[int, _Video | _Audio] = {}
    for stream in container.streams:
        if stream.type == "video":
            probes[stream.index] = _Video(stream, container, max_pixels)
        elif stream.type == "audio":
            probes[stream.index] = _Audio(stream, container, max_pixels * AUDIO_SAMPLES_PER_PIXEL)
    return probes


def _count(container: Any, probes: dict[int, _Video | _Audio], rel: str, kind: str) -> None:
    """Demux the streams to their end, or until one is past its bound or ``PACKETS``."""
    packets = dict.fromkeys(probes, 0)
    for packet in container.demux(*(probe.stream for probe in probes.values())):
        if packet.size == 0:  # the flush packet at the end
            continue
        index = packet.stream.index
        probe = probes[index]
        probe.add(packet)
        packets[index] += 1
        if probe.over(probe.counted):
            raise probe.refusal(rel, kind, probe.counted, counted=True)
        if packets[index] > PACKETS:
            what = "a video" if isinstance(probe, _Video) else "an audio"
            raise _fail(
                rel,
                f"has {what} stream ({kind}) of more than {PACKETS} packets, more than the "
                "worker measures before running: send a shorter clip",
            )


def check(path: Path, rel: str, max_pixels: int) -> None:
    """Raise ``JobFailed(input_error)`` if a stream of ``path`` decodes past the bounds."""
    container = _open(path)
    if container is None:
        return
    with container:
        kind = clip(str(getattr(container.format, "name", "?")), 40)
        probes = _probes(container, max_pixels)
        for probe in probes.values():  # what the header says, before reading further
            if probe.over(probe.claimed):
                raise probe.refusal(rel, kind, probe.claimed, counted=False)
        if not probes:
            return
        try:
            _count(container, probes, rel, kind)
        except JobFailed:
            raise
        except Exception:  # unreadable past here: so it is for ComfyUI's decoder
            return
