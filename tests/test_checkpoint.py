"""Config conversion and checkpoint loading (compiler/config.py, compiler/checkpoint.py).

Round trips: a transformers model written by its own save_pretrained, and the
same weights in mamba_ssm's layout (safetensors and torch .bin), must load
to exactly the model's tensors and give transformers' logits.  Every bad
config value and bad tensor must be a ModelError/InputError naming it.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from fastmamba.compiler.checkpoint import (
    DEFAULT_MODEL_DIR,
    WeightStore,
    expected_shapes,
    head_weight_name,
    load_model,
    save_hf_layout,
)
from fastmamba.compiler.config import Mamba2Config
from fastmamba.compiler.reference import Mamba2Reference
from fastmamba.isa.errors import InputError
from fastmamba.compiler.errors import ModelError
from model_factory import make_config, random_hf_model, random_tokens, save_hf_dir, save_mamba_ssm_dir

# mamba_ssm's config.json of state-spaces/mamba2-130m, and its published tensor shapes.
MAMBA2_130M = {"d_model": 768, "d_intermediate": 0, "n_layer": 24, "vocab_size": 50277, "ssm_cfg": {"layer": "Mamba2"},
               "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True,
               "pad_vocab_size_multiple": 16, "tie_embeddings": True}


@pytest.fixture(scope="module")
def tiny_model():
    config = make_config("groups2")
    return config, random_hf_model(config, seed=21)


@pytest.fixture(scope="module")
def untied_model():
    config = make_config("expand3_k3")
    assert not config.tie_embeddings
    return config, random_hf_model(config, seed=22)


def hf_logits(model, tokens):
    with torch.no_grad():
        return model(tokens, use_cache=False).logits


def assert_same_weights(weights, model):
    state = model.state_dict()
    for name in weights:
        assert torch.equal(weights[name], state[name]), name


# --- config ----------------------------------------------------------------------------------------------------------


def test_mamba2_130m_shapes_from_its_mamba_ssm_config():
    c = Mamba2Config.from_mamba_ssm_dict(MAMBA2_130M)
    # mamba_ssm defaults: d_state 128, headdim 64, expand 2, ngroups 1, d_conv 4; vocab padded to 50288.
    assert (c.vocab_size, c.d_inner, c.nheads, c.d_state) == (50288, 1536, 24, 128)
    shapes = expected_shapes(c)
    assert shapes["backbone.layers.0.mixer.in_proj.weight"] == (3352, 768)  # as published
    assert shapes["backbone.layers.23.mixer.conv1d.weight"] == (1792, 1, 4)
    assert shapes["backbone.embeddings.weight"] == (50288, 768)
    assert "lm_head.weight" not in shapes and head_weight_name(c) == "backbone.embeddings.weight"


def test_transformers_config_round_trip_and_derived_sizes():
    import transformers

    c = make_config("groups4_k2")
    hf = transformers.Mamba2Config(**c.to_transformers_dict())
    back = Mamba2Config.from_transformers_dict(hf.to_dict())
    assert back == c
    mixer = transformers.Mamba2ForCausalLM(hf).backbone.layers[0].mixer
    assert mixer.in_proj.weight.shape == (c.in_proj_out, c.d_model)
    assert mixer.conv1d.weight.shape == (c.conv_dim, 1, c.d_conv)
    assert mixer.norm.group_size == c.norm_group_size


@pytest.mark.parametrize("limit", [[0.0, {"__float__": "Infinity"}], [0, "inf"], (0.0, math.inf)])
def test_default_time_step_limit_spellings(limit):
    d = dict(make_config().to_transformers_dict(), time_step_limit=limit)
    assert Mamba2Config.from_transformers_dict(d).nheads == 4


HF_BAD = [
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"use_bias": True}, "use_bias"),
    ({"time_step_limit": [0.0, 10.0]}, "time_step_limit"),
    ({"model_type": "mamba"}, "model_type"),
    ({"num_heads": 5}, "nheads"),
    ({"head_dim": 5, "num_heads": 12}, "headdim"),
    ({"n_groups": 3}, "ngroups"),
    ({"state_size": 0}, "d_state"),
    ({"conv_kernel": "4"}, "conv_kernel"),
    ({"layer_norm_epsilon": -1.0}, "norm_eps"),
    ({"tie_word_embeddings": "yes"}, "tie_embeddings"),
]


@pytest.mark.parametrize("change,key", HF_BAD)
def test_unsupported_transformers_config_values(change, key):
    d = {**make_config().to_transformers_dict(), **change}
    with pytest.raises(ModelError, match=key):
        Mamba2Config.from_transformers_dict(d)


def test_missing_required_key():
    d = make_config().to_transformers_dict()
    del d["hidden_size"]
    with pytest.raises(ModelError, match="hidden_size"):
        Mamba2Config.from_transformers_dict(d)


MAMBA_SSM_BAD = [
    ({"ssm_cfg": {}}, "ssm_cfg.layer"),  # mamba_ssm's default layer is Mamba1
    ({"ssm_cfg": {"layer": "Mamba1"}}, "ssm_cfg.layer"),
    ({"d_intermediate": 3072}, "d_intermediate"),
    ({"attn_layer_idx": [3]}, "attn_layer_idx"),
    ({"rms_norm": False}, "rms_norm"),
    ({"ssm_cfg": {"layer": "Mamba2", "norm_before_gate": True}}, "norm_before_gate"),
    ({"ssm_cfg": {"layer": "Mamba2", "D_has_hdim": True}}, "D_has_hdim"),
    ({"ssm_cfg": {"layer": "Mamba2", "rmsnorm": False}}, "ssm_cfg.rmsnorm"),
    ({"ssm_cfg": {"layer": "Mamba2", "d_ssm": 768}}, "d_ssm"),
    ({"ssm_cfg": {"layer": "Mamba2", "bias": True}}, "ssm_cfg.bias"),
    ({"ssm_cfg": {"layer": "Mamba2", "dt_limit": [0.0, 0.5]}}, "dt_limit"),
    ({"ssm_cfg": {"layer": "Mamba2", "mystery": 1}}, "ssm_cfg.mystery"),
    ({"ssm_cfg": {"layer": "Mamba2", "headdim": 100}}, "headdim"),
    ({"ssm_cfg": "Mamba2"}, "ssm_cfg"),
]


@pytest.mark.parametrize("change,key", MAMBA_SSM_BAD)
def test_unsupported_mamba_ssm_config_values(change, key):
    with pytest.raises(ModelError, match=key):
        Mamba2Config.from_mamba_ssm_dict({**MAMBA2_130M, **change})


# --- loading round trips ----------------------------------------------------------------------------------------------


def test_transformers_object(tiny_model):
    config, model = tiny_model
    loaded, weights = load_model(model)
    assert loaded == config
    assert set(weights) == set(expected_shapes(config))
    # no copies: the store hands out the parameters' own storage
    in_proj = model.backbone.layers[0].mixer.in_proj.weight
    assert weights["backbone.layers.0.mixer.in_proj.weight"].data_ptr() == in_proj.data_ptr()


@pytest.mark.parametrize("which", ["tiny_model", "untied_model"])
def test_save_pretrained_directory(which, tmp_path, request):
    config, model = request.getfixturevalue(which)
    directory = save_hf_dir(model, tmp_path / "hf")
    loaded, weights = load_model(directory)
    assert loaded == config
    assert weights.origin.endswith("model.safetensors")
    assert_same_weights(weights, model)
    tokens = random_tokens(config, batch=1, length=19)
    logits, _ = Mamba2Reference(loaded, weights).prefill(tokens)
    assert (logits - hf_logits(model, tokens)).abs().max().item() < 1e-4


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("which", ["tiny_model", "untied_model"])
def test_mamba_ssm_directory(which, fmt, tmp_path, request):
    config, model = request.getfixturevalue(which)
    directory = save_mamba_ssm_dir(model, config, tmp_path / "ms", fmt=fmt)
    raw = json.loads((directory / "config.json").read_text())
    assert raw["ssm_cfg"]["layer"] == "Mamba2" and "hidden_size" not in raw
    names = (set(load_file(directory / "model.safetensors")) if fmt == "safetensors"
             else set(torch.load(directory / "pytorch_model.bin", weights_only=True)))
    assert "backbone.embedding.weight" in names and "lm_head.weight" in names  # mamba_ssm's spelling, head always saved
    loaded, weights = load_model(directory)
    assert loaded == config
    assert_same_weights(weights, model)
    tokens = random_tokens(config, batch=2, length=11)
    logits, _ = Mamba2Reference(loaded, weights).prefill(tokens)
    assert (logits - hf_logits(model, tokens)).abs().max().item() < 1e-4


def test_save_hf_layout_is_read_by_transformers(tiny_model, tmp_path):
    import transformers

    config, model = tiny_model
    _, weights = load_model(model)
    directory = save_hf_layout(config, weights, tmp_path / "ours")
    reread = transformers.Mamba2ForCausalLM.from_pretrained(directory).eval()
    tokens = random_tokens(config, batch=1, length=9)
    assert torch.equal(hf_logits(reread, tokens), hf_logits(model, tokens))
    assert load_model(directory)[0] == config


def test_save_hf_layout_in_shards_is_read_by_transformers(tiny_model, tmp_path):
    """Shards of at most 20 KB: several files, each tensor read once, and transformers reads the result."""
    import transformers

    config, model = tiny_model
    _, weights = load_model(model)
    reads = []

    class Counting(dict):
        def __getitem__(self, name):
            reads.append(name)
            return super().__getitem__(name)

    directory = save_hf_layout(config, Counting(weights.items()), tmp_path / "ours", shard_bytes=20_000)
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 2 and files[-1] == f"model-{len(files):05d}-of-{len(files):05d}.safetensors"
    assert sorted(reads) == sorted(index["weight_map"]) and not list(directory.glob("*.tmp"))
    for file in files:  # within the limit, or one tensor larger than it alone
        names = [n for n, f in index["weight_map"].items() if f == file]
        assert len(names) == 1 or sum(weights[n].numel() * weights[n].element_size() for n in names) <= 20_000
    reread = transformers.Mamba2ForCausalLM.from_pretrained(directory).eval()
    tokens = random_tokens(config, batch=1, length=9)
    assert torch.equal(hf_logits(reread, tokens), hf_logits(model, tokens))
    assert_same_weights(load_model(directory)[1], model)


def test_sharded_safetensors(tiny_model, tmp_path):
    config, model = tiny_model
    state = {k: v.contiguous().clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    names = sorted(state)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for file, keys in shards.items():
        save_file({k: state[k] for k in keys}, tmp_path / file)
    index = {"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text(json.dumps(config.to_transformers_dict()))
    loaded, weights = load_model(tmp_path)
    assert_same_weights(weights, model)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelError, match="missing shard"):
        load_model(tmp_path)


def test_half_precision_checkpoint_is_read_lazily_and_widened(tiny_model, tmp_path):
    config, model = tiny_model
    directory = save_hf_layout(config, {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}, tmp_path)
    _, weights = load_model(directory)
    name = "backbone.layers.1.mixer.out_proj.weight"
    assert weights.dtype(name) == torch.bfloat16 and weights.shape(name) == (config.d_model, config.d_inner)
    ref = Mamba2Reference(config, weights)
    assert ref.layers[1].out_proj.dtype == torch.float32
    assert torch.equal(ref.layers[1].out_proj, model.state_dict()[name].to(torch.bfloat16).float())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_safetensors_tensors_are_read_as_stored_without_mapping_the_file(tiny_model, tmp_path, dtype):
    config, model = tiny_model
    directory = save_hf_layout(config, {k: v.to(dtype) for k, v in model.state_dict().items()}, tmp_path)
    _, weights = load_model(directory)
    got = {name: weights[name] for name in weights}
    with open("/proc/self/maps") as maps:  # the tensors are copies: no mapping of the checkpoint is kept
        assert str(directory / "model.safetensors") not in maps.read()
    stored = load_file(directory / "model.safetensors")  # safetensors' own reader
    for name, tensor in got.items():
        assert tensor.dtype == dtype and torch.equal(tensor.view(torch.uint8), stored[name].view(torch.uint8)), name


def test_membership_reads_no_tensor():
    def unread():
        raise AssertionError("the tensor was read")

    store = WeightStore({"backbone.norm_f.weight": ((4,), torch.float32, unread)}, "test")
    assert "backbone.norm_f.weight" in store and "lm_head.weight" not in store


# --- bad checkpoints --------------------------------------------------------------------------------------------------


@pytest.fixture
def hf_dir(tiny_model, tmp_path):
    return save_hf_dir(tiny_model[1], tmp_path / "m")


def rewrite_tensors(directory, edit):
    tensors = load_file(directory / "model.safetensors")
    edit(tensors)
    save_file(tensors, directory / "model.safetensors")


def test_missing_tensor(hf_dir):
    rewrite_tensors(hf_dir, lambda t: t.pop("backbone.layers.1.mixer.D"))
    with pytest.raises(ModelError, match=r"missing tensor backbone\.layers\.1\.mixer\.D\b"):
        load_model(hf_dir)


def test_extra_tensor(hf_dir):
    rewrite_tensors(hf_dir, lambda t: t.__setitem__("backbone.layers.0.mixer.in_proj.bias", torch.zeros(3)))
    with pytest.raises(ModelError, match=r"unexpected tensor backbone\.layers\.0\.mixer\.in_proj\.bias"):
        load_model(hf_dir)


def test_misshaped_tensor(hf_dir):
    rewrite_tensors(hf_dir, lambda t: t.__setitem__("backbone.layers.0.mixer.A_log", torch.zeros(9)))
    with pytest.raises(ModelError, match=r"backbone\.layers\.0\.mixer\.A_log .*shape \[9\], expected \[8\]"):
        load_model(hf_dir)


def test_integer_tensor(hf_dir):
    rewrite_tensors(hf_dir, lambda t: t.__setitem__("backbone.norm_f.weight", torch.ones(32, dtype=torch.int32)))
    with pytest.raises(ModelError, match=r"backbone\.norm_f\.weight .*dtype"):
        load_model(hf_dir)


def test_untied_checkpoint_without_head(untied_model, tmp_path):
    directory = save_hf_dir(untied_model[1], tmp_path)
    rewrite_tensors(directory, lambda t: t.pop("lm_head.weight"))
    with pytest.raises(ModelError, match="missing tensor lm_head.weight"):
        load_model(directory)


def test_unsupported_value_in_config_json(hf_dir):
    raw = json.loads((hf_dir / "config.json").read_text())
    (hf_dir / "config.json").write_text(json.dumps({**raw, "use_bias": True}))
    with pytest.raises(ModelError, match="use_bias=True"):
        load_model(hf_dir)


def test_bad_directories(hf_dir, tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "absent")
    with pytest.raises(InputError, match="not a directory"):
        load_model(hf_dir / "config.json")
    with pytest.raises(InputError, match="cannot load a model from a int"):
        load_model(3)
    (hf_dir / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelError, match="cannot read"):
        load_model(hf_dir)
    (hf_dir / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no weights"):
        load_model(hf_dir)
    (hf_dir / "config.json").write_text("{oops")
    with pytest.raises(ModelError, match="config.json"):
        load_model(hf_dir)
    (hf_dir / "config.json").write_text('{"something": 1}')
    with pytest.raises(ModelError, match="neither"):
        load_model(hf_dir)
    (hf_dir / "config.json").unlink()
    with pytest.raises(InputError, match="no config.json"):
        load_model(hf_dir)


def test_bad_torch_bin(tiny_model, tmp_path):
    config, model = tiny_model
    directory = save_mamba_ssm_dir(model, config, tmp_path, fmt="bin")
    (directory / "pytorch_model.bin").write_bytes(b"not a zip file")
    with pytest.raises(ModelError, match="cannot read"):
        load_model(directory)
    torch.save([1, 2], directory / "pytorch_model.bin")
    with pytest.raises(ModelError, match="mapping of names to tensors"):
        load_model(directory)


def test_default_model_dir_is_inside_the_package():
    import fastmamba.compiler

    package_dir = type(DEFAULT_MODEL_DIR)(fastmamba.compiler.__file__).parent
    assert DEFAULT_MODEL_DIR.parent.parent.resolve() == package_dir.resolve()
    assert DEFAULT_MODEL_DIR.name == "default"
