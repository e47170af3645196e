"""The InTI layer, the video model, presets, checkpoints and FLOP counting."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from helpers import assert_one_line_error
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.errors import CheckpointError, InputShapeError, PresetError
from inti_export.models import create_model, get_config, list_presets
from inti_export.models.checkpoint import load_inti_checkpoint
from inti_export.models.flops import count_flops
from inti_export.models.inti_layer import InTILayer

PAPER_GFLOPS = {  # Table 1 of the paper
    "naive-b16": (281, 0.01),
    "inti-b16-early": (147, 0.05),
    "inti-b16": (182, 0.05),
    "inti-b16-late": (217, 0.05),
    "naive-l14": (1297, 0.01),
    "inti-l14-early": (650, 0.05),
    "inti-l14": (811, 0.05),
    "inti-l14-late": (973, 0.05),
}


def test_presets_listed():
    assert set(PAPER_GFLOPS) | {"test-tiny", "task-inti", "task-naive"} == set(list_presets())
    assert get_config("inti-b16").insert_before == (5, 7)
    assert get_config("inti-l14").insert_before == (10, 14)


@pytest.fixture(scope="module")
def flops_of():
    """`count_flops(preset)`, each preset counted once in this module (it takes up to a second)."""
    return functools.cache(count_flops)


@pytest.mark.parametrize("preset", sorted(PAPER_GFLOPS))
def test_flops_reproduce_paper_table1(preset, flops_of):
    paper, tol = PAPER_GFLOPS[preset]
    report = flops_of(preset)
    assert abs(report.gflops - paper) / paper < tol, report
    if preset.startswith("inti"):
        assert report.frames_per_stage == [16, 8, 4]
        expected_inti = 11.3 if "b16" in preset else 26.0  # spec: about 8*D*D' per output token
        assert abs(report.inti_gflops - expected_inti) / expected_inti < 0.05, report


def test_frames_halve_at_each_inti_layer(tiny_model, tiny_video):
    counts = []
    hooks = [
        layer.register_forward_hook(lambda m, i, o: counts.append((i[0].shape[0], o.shape[0])))
        for layer in tiny_model.inti.values()
    ]
    try:
        with torch.no_grad():
            tiny_model(tiny_video)
    finally:
        for h in hooks:
            h.remove()
    assert counts == [(2 * 8, 2 * 4), (2 * 4, 2 * 2)]


def _trained_layer(dim=16, frames=4, grid=2, seed=0):
    torch.manual_seed(seed)
    layer = InTILayer(dim, frames, grid, context_dim=8)
    with torch.no_grad():  # leave the zero init so the weights actually vary
        torch.nn.init.normal_(layer.head_fc2.weight, std=1.0)
        torch.nn.init.normal_(layer.head_fc2.bias, std=1.0)
    return layer


def test_interpolation_weights_positive_and_sum_to_one():
    layer = _trained_layer()
    x = torch.randn(3 * 4, 5, 16)
    w = layer.interpolation_weights(x)  # (B, T/2, N, 2)
    assert w.shape == (3, 2, 5, 2)
    assert (w > 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 5))
    assert w.std() > 0.01  # not the trivial 0.5 / 0.5


def test_fresh_layer_averages_neighbours():
    layer = InTILayer(16, 4, 2, context_dim=8)
    x = torch.randn(2 * 4, 5, 16)
    pairs = x.reshape(2, 2, 2, 5, 16)
    expected = 0.5 * (pairs[:, :, 0] + pairs[:, :, 1])
    torch.testing.assert_close(layer(x), expected.reshape(4, 5, 16))


def test_zero_gate_makes_temporal_embedding_inert():
    layer = _trained_layer()
    x = torch.randn(2 * 4, 5, 16)
    y = layer(x)
    with torch.no_grad():
        layer.temporal_pos.add_(torch.randn_like(layer.temporal_pos) * 10)
    torch.testing.assert_close(layer(x), y)
    with torch.no_grad():
        layer.gate.fill_(0.5)
    assert not torch.allclose(layer(x), y)


def test_gradients_reach_every_inti_parameter():
    model = create_model("test-tiny").train()
    with torch.no_grad():  # open the zero-initialised paths so every parameter gets a gradient
        for layer in model.inti.values():
            layer.gate.fill_(0.1)
            torch.nn.init.normal_(layer.head_fc2.weight, std=0.5)
    model(torch.randn(2, 8, 3, 32, 32)).square().sum().backward()
    for name, p in model.inti.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_same_seed_same_output(tiny_video):
    a, b = create_model("test-tiny"), create_model("test-tiny")
    with torch.no_grad():
        torch.testing.assert_close(a(tiny_video), b(tiny_video), rtol=0, atol=0)
    c = create_model("test-tiny", seed=1)
    assert not torch.equal(a.inti["1"].temporal_pos, c.inti["1"].temporal_pos)


def test_fused_and_plain_attention_agree(tiny_model, tiny_video):
    from inti_export.models import compute_mode

    with torch.no_grad():
        fused = tiny_model(tiny_video)
        with compute_mode.export_mode():
            plain = tiny_model(tiny_video)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)


def test_classifier_head():
    model = create_model("test-tiny", num_classes=10)
    assert model(torch.randn(1, 8, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize(
    "shape, match",
    [
        ((1, 6, 3, 32, 32), "6 frames"),
        ((1, 8, 1, 32, 32), "1 channels"),
        ((1, 8, 3, 48, 48), "48x48"),
        ((8, 3, 32, 32), "5 dims"),
    ],
)
def test_bad_video_shape(tiny_model, shape, match):
    with pytest.raises(InputShapeError, match=match):
        tiny_model(torch.zeros(shape))


def test_frames_an_inti_layer_cannot_halve():
    with pytest.raises(PresetError, match="frames=6"):
        create_model("test-tiny", frames=6)
    with pytest.raises(PresetError, match="frames=10.*5 frames.*multiple of 4"):
        create_model("test-tiny", frames=10)
    assert create_model("test-tiny", frames=4).cfg.frames_per_stage() == [4, 2, 1]


def test_unknown_preset_and_option():
    with pytest.raises(PresetError, match="'nope'.*test-tiny"):
        create_model("nope")
    with pytest.raises(PresetError, match="framez"):
        create_model("test-tiny", framez=4)


def test_checkpoint_round_trip(tmp_path, tiny_video):
    model = create_model("test-tiny", seed=3)
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    loaded = create_model("test-tiny", checkpoint=path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(tiny_video), model(tiny_video), rtol=0, atol=0)
    # safetensors too
    from safetensors.torch import save_file

    st = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, st)
    with torch.no_grad():
        torch.testing.assert_close(create_model("test-tiny", checkpoint=st)(tiny_video), model(tiny_video))


def test_checkpoint_that_does_not_fit(tmp_path):
    other = create_model("test-tiny", frames=16)  # temporal embedding has 16 rows, not 8
    path = tmp_path / "other.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"temporal_pos has shape \(16, 64\).*\(8, 64\)"):
        create_model("test-tiny", checkpoint=path)


def test_checkpoint_unreadable_or_unsafe(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        create_model("test-tiny", checkpoint=garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        create_model("test-tiny", checkpoint=tmp_path / "missing.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="evil.pt.*contains code.*refused") as err:
        create_model("test-tiny", checkpoint=evil)
    assert "weights_only=False" not in str(err.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"encoder.weight": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="shares no tensor names"):
        create_model("test-tiny", checkpoint=foreign)


def test_clip_checkpoint_loads_backbone(tmp_path, tiny_video):
    donor = create_model("test-tiny", seed=7)
    clip_sd = {f"visual.{k}": v for k, v in donor.visual.state_dict().items()}
    clip_sd["logit_scale"] = torch.tensor(1.0)
    path = tmp_path / "clip.pt"
    torch.save({"state_dict": clip_sd}, path)
    model = create_model("test-tiny", clip_checkpoint=path)
    for k, v in donor.visual.state_dict().items():
        assert torch.equal(model.visual.state_dict()[k], v), k
    from inti_export.models.checkpoint import load_clip_checkpoint

    report = load_clip_checkpoint(create_model("test-tiny"), path)
    assert report.unexpected == ["logit_scale"] and report.missing == []


def test_load_report_lists_missing(tmp_path):
    model = create_model("test-tiny")
    sd = model.state_dict()
    partial = {k: v for k, v in sd.items() if not k.startswith("inti.")}
    path = tmp_path / "partial.pt"
    torch.save(partial, path)
    report = load_inti_checkpoint(create_model("test-tiny"), path)
    assert report.missing == sorted(k for k in sd if k.startswith("inti."))
    assert report.loaded == len(partial) and report.unexpected == []


def test_open_clip_host_is_as_expected():
    import open_clip

    from inti_export.models.patch_open_clip import OPEN_CLIP_VERSION, Attention

    assert open_clip.__version__ == OPEN_CLIP_VERSION
    model = create_model("test-tiny")
    assert all(isinstance(b.attn, Attention) for b in model.visual.transformer.resblocks)
    keys = model.visual.transformer.resblocks[0].state_dict().keys()
    assert {"attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias"} <= set(keys)


def test_cli_flops_json():
    result = CliRunner().invoke(app, ["flops", "--preset", "inti-b16", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["preset"] == "inti-b16" and data["frames"] == 16 and data["params"] > 9e7
    assert abs(data["gflops"] - 182) / 182 < 0.05


def test_cli_errors_are_one_line():
    result = CliRunner().invoke(app, ["flops", "--preset", "inti-b16", "--frames", "6"])
    assert_one_line_error(result, "frames=6")
    result = CliRunner().invoke(app, ["flops", "--preset", "nope"])
    assert_one_line_error(result, "unknown preset 'nope'")


def test_cli_presets_table(monkeypatch, flops_of):
    from inti_export.models import flops

    monkeypatch.setattr(flops, "count_flops", flops_of)  # the real counts, shared with the tests above
    result = CliRunner().invoke(app, ["presets"])
    assert result.exit_code == 0 and "inti-l14-late" in result.stdout


def test_stream_split_is_exact_at_stride(tiny_model):
    """A stream's stems, computed a few frames at a time and kept in a ring, give each window's answer:
    the blocks before the first InTI layer see one frame at a time (docs/model.md, "Streams")."""
    c, stride = tiny_model.cfg, 2
    assert tiny_model.stem_blocks == c.insert_before[0] == 1
    frames = torch.randn(c.frames + 3 * stride, 3, c.image_size, c.image_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        stems = torch.cat([tiny_model.forward_stem(frames[i:i + stride]) for i in range(0, len(frames), stride)])
        for start in range(0, len(frames) - c.frames + 1, stride):
            window = frames[start:start + c.frames]
            streamed = tiny_model.forward_head(stems[start:start + c.frames][None])  # (1, E)
            full = tiny_model(window[None])  # (1, E)
            torch.testing.assert_close(streamed, full, atol=1e-5, rtol=1e-5)
    naive = create_model("test-tiny", insert_before=())
    assert naive.stem_blocks == c.layers  # no InTI layer: every block is per-frame
    with pytest.raises(InputShapeError, match=r"expected \(B, 8, N, D\)"):
        tiny_model.forward_head(stems[:3][None])
