"""Model descriptions and graphs: parameter counts against published figures, KV bytes and node
attributes computed by hand, MoE layer selection, sliding windows, and the `model` commands.

Published figures are those listed, with their sources, in graphs/SOURCES.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from planner.core.errors import PlannerInputError
from planner.model.config import GRAPHS_DIR, HFConfig
from planner.model.graph import load_model

SHIPPED = [
    "gemma-2-9b",
    "gemma-3-1b",
    "qwen2.5-7b",
    "mistral-7b-v0.3",
    "phi-3-mini-4k",
    "phi-3-medium-4k",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.1-405b",
    "mixtral-8x7b",
    "deepseek-v3",
    "qwen3-235b-a22b",
]


def _config(name: str) -> dict:
    return json.loads((GRAPHS_DIR / f"{name}.json").read_text())


def _write(tmp_path: Path, data: dict, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


# ------------------------------------------------------------------------------------ published counts


@pytest.mark.parametrize(
    ("name", "total", "active", "active_rel"),
    [
        # graphs/SOURCES.md: HF model cards / safetensors totals
        ("llama-3.1-8b", 8.03e9, 8.03e9, 0.005),
        ("llama-3.1-70b", 70.55e9, 70.55e9, 0.005),
        ("llama-3.1-405b", 405.85e9, 405.85e9, 0.005),
        # Mistral AI, "Mixtral of experts" (Dec 2023): 46.7 B total, 12.9 B active
        ("mixtral-8x7b", 46.7e9, 12.9e9, 0.005),
        # DeepSeek-V3 technical report (arXiv 2412.19437) section 1: 671 B total, 37 B active, without the
        # 14 B MTP module; "37 B" is rounded to two digits, so the active count is checked within 2 %
        ("deepseek-v3", 671e9, 37e9, 0.02),
        # Qwen3 technical report (arXiv 2505.09388) Table 2: 235 B total, 22 B active; "22 B" is rounded
        # to two digits (the "A22B" of the name), so checked within 2 %
        ("qwen3-235b-a22b", 235e9, 22e9, 0.02),
        # Gemma 2 technical report (arXiv 2408.00118) Table 2, 9B: 8,324,201,984 non-embedding parameters
        # + 917,962,752 embedding (its 256,128-row padded vocabulary); the HF config's 256,000 rows give
        # 256,000 x 3,584 = 917,504,000, so the released checkpoint holds 9,241,705,984 (its safetensors
        # metadata); checked within 0.5 % of the report's 9,242,164,736
        ("gemma-2-9b", 917_962_752 + 8_324_201_984, 917_962_752 + 8_324_201_984, 0.005),
        # Gemma 3 technical report (arXiv 2503.19786) Table 1, 1B: 302 M embedding + 698 M non-embedding
        ("gemma-3-1b", 302e6 + 698e6, 302e6 + 698e6, 0.005),
        # Qwen/Qwen2.5-7B model card: "Number of Parameters: 7.61B"
        ("qwen2.5-7b", 7.61e9, 7.61e9, 0.005),
        # mistralai/Mistral-7B-v0.3 model page (safetensors metadata): 7.25 B parameters
        ("mistral-7b-v0.3", 7.25e9, 7.25e9, 0.005),
        # microsoft/Phi-3-mini-4k-instruct model page (safetensors metadata): 3.82 B parameters
        # (the Phi-3 report, arXiv 2404.14219, rounds it to 3.8 B)
        ("phi-3-mini-4k", 3.82e9, 3.82e9, 0.005),
        # Phi-3 technical report (arXiv 2404.14219) section 2: phi-3-medium, 14 B parameters (rounded; the
        # checkpoint holds 13,960,238,080, 0.28 % under)
        ("phi-3-medium-4k", 14e9, 14e9, 0.005),
    ],
)
def test_parameter_counts_match_published(name: str, total: float, active: float, active_rel: float):
    model = load_model(name)
    assert model.total_params == pytest.approx(total, rel=0.005)
    assert model.active_params == pytest.approx(active, rel=active_rel)


def test_llama_8b_count_exactly():
    """Llama-3.1-8B by hand (h=4096, 32 layers, 32 heads, 8 KV heads of 128, FFN 14336, vocab 128256):
    embed 128256*4096 = 525,336,576; per layer attn q,o 2*4096*4096 + k,v 2*4096*1024 + norm 4096
    = 41,947,136 and FFN 3*4096*14336 + norm 4096 = 176,164,864; lm_head 525,336,576 + final norm 4096.
    Total 525,336,576 + 32*218,112,000 + 525,340,672 = 8,030,261,248 (the safetensors total)."""
    assert load_model("llama-3.1-8b").total_params == 8_030_261_248


# ------------------------------------------------------------------------------------ KV bytes per token


def test_kv_bytes_deepseek_mla():
    """MLA caches the compressed latent (kv_lora_rank 512) and the shared rope key (64) per layer:
    61 layers * (512 + 64) values * 2 B (bf16) = 70,272 B per token."""
    assert load_model("deepseek-v3").kv_bytes_per_token == 61 * (512 + 64) * 2 == 70_272


def test_kv_bytes_llama_70b_and_fp8_halves():
    """GQA: 80 layers * (K and V) 2 * 8 KV heads * 128 * 2 B = 327,680 B; fp8 KV: 1 B per value."""
    assert load_model("llama-3.1-70b").kv_bytes_per_token == 80 * 2 * 8 * 128 * 2 == 327_680
    assert load_model("llama-3.1-70b", kv_dtype="fp8").kv_bytes_per_token == 327_680 / 2
    # the weight dtype does not touch the KV, and halves the weight bytes
    fp8_weights = load_model("llama-3.1-70b", weight_dtype="fp8")
    assert fp8_weights.kv_bytes_per_token == 327_680
    assert fp8_weights.weight_bytes == pytest.approx(load_model("llama-3.1-70b").weight_bytes / 2)


def _small_llama(**extra) -> dict:
    """A 4-layer Llama-shaped config: KV per layer per token = 2 * 8 heads * 128 * 2 B = 4,096 B."""
    return {
        "model_type": "llama",
        "hidden_size": 1024,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "intermediate_size": 4096,
        "vocab_size": 1000,
        **extra,
    }


def test_sliding_window_layer_types(tmp_path: Path):
    """layer_types [sliding, full, sliding, full] with a 1,024-token window at context 4,096 (Qwen2 reads
    layer_types when use_sliding_window is on): 2 full layers * 4,096 tokens * 4,096 B + 2 sliding layers
    * 1,024 tokens * 4,096 B = 41,943,040 B; at context 512 (< window) every layer holds 512 tokens:
    4 * 512 * 4,096 = 8,388,608 B."""
    types = ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]
    config = _small_llama(model_type="qwen2", layer_types=types, sliding_window=1024, use_sliding_window=True)
    model = load_model(_write(tmp_path, config))
    assert model.kv_bytes_per_token == 4 * 4096  # per context token, windows not applied
    assert model.kv_bytes_per_user(4096) == 2 * 4096 * 4096 + 2 * 1024 * 4096 == 41_943_040
    assert model.kv_bytes_per_user(512) == 4 * 512 * 4096
    windows = [model.graph.nodes[f"L{i}.attn"]["kv_window_tokens"] for i in range(4)]
    assert windows == [1024, 0, 1024, 0]


def test_sliding_window_every_layer_and_max_window_layers(tmp_path: Path):
    """Mistral's `sliding_window` windows every layer: 4 * 1,024 * 4,096 B at context 4,096, and a Mistral
    config without the field takes transformers' default of 4,096 tokens. Qwen2 with use_sliding_window
    and max_window_layers=2 windows layers 2 and 3 only: 2 * 4,096 * 4,096 + 2 * 1,024 * 4,096 B; without
    use_sliding_window (its default False) no layer is windowed, and Llama has no window at all."""

    def kv(name: str, **config) -> float:
        return load_model(_write(tmp_path, _small_llama(**config), name)).kv_bytes_per_user(4096)

    assert kv("a.json", model_type="mistral", sliding_window=1024) == 4 * 1024 * 4096
    assert kv("b.json", model_type="mistral") == 4 * 4096 * 4096  # default window 4,096 = the context
    assert kv("b2.json", model_type="mistral", sliding_window=None) == 4 * 4096 * 4096
    upper = dict(model_type="qwen2", sliding_window=1024, use_sliding_window=True, max_window_layers=2)
    assert kv("c.json", **upper) == 2 * 4096 * 4096 + 2 * 1024 * 4096
    assert kv("d.json", model_type="qwen2", sliding_window=1024) == 4 * 4096 * 4096
    assert kv("e.json") == 4 * 4096 * 4096


def test_gemma2_alternates_sliding_and_global_layers_at_32k():
    """Gemma-2-9B (graphs/gemma-2-9b.json, no layer_types): transformers' Gemma2Config makes layer i
    sliding when (i + 1) % 2, so the 21 even layers hold min(32,768, 4,096) tokens and the 21 odd layers
    all 32,768. KV per layer per token: 2 (K, V) * 8 KV heads * 256 head_dim * 2 B = 8,192 B.
    Per user at 32K: 21 * 32,768 * 8,192 + 21 * 4,096 * 8,192 = 6,341,787,648 B (every layer windowed,
    as before: 42 * 4,096 * 8,192 = 1,409,286,144 B, under-counted 4.5x)."""
    model = load_model("gemma-2-9b")
    assert model.kv_bytes_per_token == 42 * 8192
    assert model.kv_bytes_per_user(32 * 1024) == 21 * 32768 * 8192 + 21 * 4096 * 8192 == 6_341_787_648
    windows = [model.graph.nodes[f"L{i}.attn"]["kv_window_tokens"] for i in range(4)]
    assert windows == [4096, 0, 4096, 0]


def test_gemma3_sliding_window_pattern():
    """Gemma-3-1B (sliding_window 512, sliding_window_pattern 6): every 6th layer is global
    (i = 5, 11, 17, 23: transformers' (i + 1) % 6 == 0), the other 22 slide. KV per layer per token:
    2 * 1 KV head * 256 * 2 B = 1,024 B. Per user at 32K: 4 * 32,768 * 1,024 + 22 * 512 * 1,024 B."""
    model = load_model("gemma-3-1b")
    globals_ = [i for i in range(26) if model.graph.nodes[f"L{i}.attn"]["kv_window_tokens"] == 0]
    assert globals_ == [5, 11, 17, 23]
    assert model.kv_bytes_per_user(32768) == 4 * 32768 * 1024 + 22 * 512 * 1024 == 145_752_064


def test_tied_embeddings_follow_the_architecture_default(tmp_path: Path):
    """A Gemma 2 config without tie_word_embeddings is tied (transformers' Gemma2Config default True):
    the lm_head holds no parameters of its own, so the count is 9,241,705,984 (the released checkpoint's
    safetensors metadata; Gemma 2 report Table 2: 8,324,201,984 non-embedding + 256,000 x 3,584 embedding
    rows of the HF config);
    untied it would be 917,504,000 more (256,000 x 3,584), the 10.16 B a default of False gave."""
    data = _config("gemma-2-9b")
    assert "tie_word_embeddings" not in data
    assert load_model("gemma-2-9b").total_params == 9_241_705_984
    untied = load_model(_write(tmp_path, {**data, "tie_word_embeddings": False}))
    assert untied.total_params == 9_241_705_984 + 256_000 * 3_584 == 10_159_209_984


def test_qwen2_bias_on_qkv_and_gemma_norms():
    """Qwen2.5-7B, layer 0 attention by hand (transformers' Qwen2Attention: q, k, v with bias, o without):
    q 3,584 x 3,584 + 3,584, k and v 2 x (3,584 x 512 + 512), o 3,584 x 3,584, input norm 3,584
    = 29,368,320. Gemma-2-9B layer 0 FFN: 3 x 3,584 x 14,336 + two norms (pre_ and post_feedforward)."""
    attn = load_model("qwen2.5-7b").graph.nodes["L0.attn"]
    assert attn["params"] == 3584 * 3584 + 3584 + 2 * (3584 * 512 + 512) + 3584 * 3584 + 3584 == 29_368_320
    ffn = load_model("gemma-2-9b").graph.nodes["L0.ffn"]
    assert ffn["params"] == 3 * 3584 * 14336 + 2 * 3584


# ------------------------------------------------------------------------------------ MoE layer selection


def _moe_layers(model) -> list[int]:
    return [d["layer"] for _, d in model.graph.nodes(data=True) if d["kind"] == "moe"]


def test_deepseek_first_k_dense_replace():
    """first_k_dense_replace = 3: layers 0-2 dense, 3-60 MoE: 61 - 3 = 58 MoE layers."""
    model = load_model("deepseek-v3")
    assert _moe_layers(model) == list(range(3, 61))
    assert model.info()["moe_layers"] == 58
    assert [f"L{i}.ffn" in model.graph for i in range(4)] == [True, True, True, False]


def test_qwen_mlp_only_layers_and_decoder_sparse_step(tmp_path: Path):
    """Qwen3-MoE: MoE on layer i unless i is in mlp_only_layers, and only when (i + 1) % decoder_sparse_step
    == 0. Shipped: all 94. mlp_only_layers [0, 5]: 92. decoder_sparse_step 2: odd layers 1, 3, ..., 93: 47."""
    assert len(_moe_layers(load_model("qwen3-235b-a22b"))) == 94
    base = _config("qwen3-235b-a22b")
    only = load_model(_write(tmp_path, {**base, "mlp_only_layers": [0, 5]}, "only.json"))
    assert len(_moe_layers(only)) == 92 and 0 not in _moe_layers(only) and 5 not in _moe_layers(only)
    step = load_model(_write(tmp_path, {**base, "decoder_sparse_step": 2}, "step.json"))
    assert _moe_layers(step) == list(range(1, 94, 2))


def test_mixtral_moe_node_by_hand():
    """Mixtral-8x7B layer 0 MoE: expert = gate+up+down 3 * 4096 * 14336 = 176,160,768 params; router
    4096 * 8 = 32,768; norm 4,096. Resident 8 experts + router + norm; active 2 experts + router + norm."""
    node = load_model("mixtral-8x7b").graph.nodes["L0.moe"]
    expert = 3 * 4096 * 14336
    assert node["experts"] == 8 and node["experts_per_tok"] == 2
    assert node["params"] == 8 * expert + 32_768 + 4_096
    assert node["active_params"] == 2 * expert + 32_768 + 4_096
    assert node["expert_bytes"] == expert * 2
    assert node["shared_bytes"] == (32_768 + 4_096) * 2
    assert node["weight_bytes"] == node["shared_bytes"] + 8 * node["expert_bytes"]
    assert node["flops_per_token"] == 2 * (2 * expert + 32_768)


# ------------------------------------------------------------------------------------ graph attributes


REQUIRED = {  # FORMULATION.md section 1
    "weight_bytes",
    "kv_bytes_per_token",
    "flops_per_token",
    "attn_flops_per_ctx_token",
    "experts",
    "experts_per_tok",
    "expert_bytes",
    "shared_bytes",
}


@pytest.mark.parametrize("name", SHIPPED)
def test_graph_order_and_required_attributes(name: str):
    model = load_model(name)
    layers = model.config.num_hidden_layers
    names = list(model.graph.nodes)
    assert names[0] == "embed" and names[-1] == "lm_head"
    assert len(names) == 2 * layers + 2
    for i in range(layers):
        assert names[1 + 2 * i] == f"L{i}.attn"
        assert names[2 + 2 * i] in (f"L{i}.ffn", f"L{i}.moe")
    for n, data in model.graph.nodes(data=True):
        assert REQUIRED <= set(data), f"{n} lacks {REQUIRED - set(data)}"
    # a chain: each node feeds the next, carrying one token's hidden state (hidden_size * 2 B)
    assert list(model.graph.edges) == list(zip(names, names[1:]))
    hidden = model.config.hidden_size
    assert {d["activation_bytes"] for *_, d in model.graph.edges(data=True)} == {hidden * 2}
    assert nx.is_directed_acyclic_graph(model.graph)


def test_llama_8b_layer_attributes_by_hand():
    """Llama-3.1-8B layer 0 (h = 4096, 32 heads and 8 KV heads of d = 128, FFN 14336, bf16):
    attn params = q 4096*4096 + k 4096*1024 + v 4096*1024 + o 4096*4096 + input norm 4096 = 41,947,136,
    weight bytes = 2 * that = (4096*4096*2 + 2*4096*1024 + 4096) * 2 = 83,894,272;
    KV per token = (K and V) 2 * 8 * 128 * 2 B = 4,096 B;
    matmul FLOPs per token = 2 * (params - norm) = 83,886,080;
    attention per context token = QK^T (2 d) + PV (2 d) per head = 4 * 32 * 128 = 16,384 FLOPs.
    ffn params = 3 * 4096 * 14336 + 4096 = 176,164,864; FLOPs 2 * 3 * 4096 * 14336 = 352,321,536.
    embed: 128256 * 4096 params, one row (4096 * 2 B) read per token; lm_head: 2 * 128256 * 4096 FLOPs."""
    g = load_model("llama-3.1-8b").graph
    attn, ffn, embed, head = g.nodes["L0.attn"], g.nodes["L0.ffn"], g.nodes["embed"], g.nodes["lm_head"]
    assert attn["params"] == 41_947_136
    assert attn["weight_bytes"] == (4096 * 4096 * 2 + 2 * 4096 * 1024 + 4096) * 2 == 83_894_272
    assert attn["kv_bytes_per_token"] == 4_096
    assert attn["flops_per_token"] == 83_886_080
    assert attn["attn_flops_per_ctx_token"] == 16_384
    assert attn["experts"] == 0 and attn["expert_bytes"] == 0 and attn["shared_bytes"] == 0
    assert ffn["params"] == 176_164_864 and ffn["weight_bytes"] == 2 * 176_164_864
    assert ffn["flops_per_token"] == 352_321_536
    assert ffn["kv_bytes_per_token"] == 0 and ffn["attn_flops_per_ctx_token"] == 0
    assert embed["weight_bytes"] == 128_256 * 4096 * 2 and embed["lookup_bytes_per_token"] == 8_192
    assert embed["flops_per_token"] == 0
    assert head["flops_per_token"] == 2 * 128_256 * 4096
    assert head["weight_bytes"] == (128_256 * 4096 + 4096) * 2


def test_deepseek_mla_attention_by_hand():
    """DeepSeek-V3 layer 0 attention (h 7168, 128 heads, q_lora 1536, kv_lora 512, nope 128, rope 64, v 128):
    q: 7168*1536 + norm 1536 + 1536*128*(128+64) = 48,760,320; kv: 7168*(512+64) + norm 512
    + 512*128*(128+128) = 20,906,496; o: 128*128*7168 = 117,440,512; + input norm 7168.
    Total 187,114,496 params; KV per token (512 + 64) * 2 B = 1,152 B."""
    node = load_model("deepseek-v3").graph.nodes["L0.attn"]
    q = 7168 * 1536 + 1536 + 1536 * 128 * (128 + 64)
    kv = 7168 * (512 + 64) + 512 + 512 * 128 * (128 + 128)
    o = 128 * 128 * 7168
    assert (q, kv, o) == (48_760_320, 20_906_496, 117_440_512)
    assert node["params"] == q + kv + o + 7168 == 187_114_496
    assert node["kv_bytes_per_token"] == 1_152


# ------------------------------------------------------------------------------------ bad configs


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hidden_size": None}, "hidden_size"),
        ({"num_hidden_layers": -1}, "num_hidden_layers"),
        ({"num_hidden_layers": 10**6}, "num_hidden_layers"),
        ({"num_key_value_heads": 7}, "num_key_value_heads"),
        ({"intermediate_size": None}, "intermediate_size"),
        ({"vocab_size": "many"}, "vocab_size"),
        ({"layer_types": ["full_attention"]}, "layer_types"),
        ({"model_type": "qwen2", "layer_types": ["full_attention"]}, "layer_types has 1 entries"),
        ({"model_type": "gemma2", "sliding_window": -1}, "sliding_window"),
        ({"num_local_experts": 8}, "num_local_experts"),
        ({"n_group": 8}, "n_group"),
        ({"model_type": "mistral", "layer_types": ["full_attention"] * 32}, "layer_types"),
        ({"model_type": "qwen3_moe", "use_sliding_window": True}, "use_sliding_window"),
        ({"model_type": "deepseek_v3", "attention_bias": True}, "attention_bias"),
        ({"model_type": "falcon"}, "model_type: 'falcon' is not a supported architecture"),
        ({"model_type": None}, "model_type: required field is missing"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, change: dict, field: str):
    data = {k: v for k, v in {**_config("llama-3.1-8b"), **change}.items() if v is not None}
    path = _write(tmp_path, data)
    with pytest.raises(PlannerInputError) as info:
        load_model(path)
    assert str(path) in info.value.message() and field in info.value.message()


def test_deepseek_without_intermediate_size_is_an_input_error(tmp_path: Path):
    """Dropping intermediate_size from DeepSeek-V3 (its 3 dense layers need it) crashed with a TypeError."""
    data = _config("deepseek-v3")
    del data["intermediate_size"]
    with pytest.raises(PlannerInputError, match="intermediate_size is required: 3 layer"):
        load_model(_write(tmp_path, data))


def test_unknown_model_name_and_dtype():
    with pytest.raises(PlannerInputError, match="no such model: expected one of .*llama-3.1-8b"):
        load_model("llama-9")
    with pytest.raises(PlannerInputError, match="unknown dtype 'bf17'"):
        load_model("llama-3.1-8b", kv_dtype="bf17")


def test_model_from_a_directory_or_a_yaml_file(tmp_path: Path):
    """A downloaded HF checkpoint folder (its config.json is read) or a YAML file with the same fields."""
    _write(tmp_path, _config("llama-3.1-8b"))
    assert load_model(tmp_path).total_params == 8_030_261_248
    (tmp_path / "llama.yaml").write_text(
        "\n".join(f"{k}: {json.dumps(v)}" for k, v in _config("llama-3.1-8b").items())
    )
    assert load_model(tmp_path / "llama.yaml").total_params == 8_030_261_248


def test_hf_config_ignores_unrelated_fields():
    config = HFConfig.model_validate({**_config("llama-3.1-8b"), "rope_scaling": {"factor": 8.0}})
    assert config.hidden_size == 4096


# ------------------------------------------------------------------------------------ the model commands


def test_model_info_json(cli):
    result = cli(["model", "info", "llama-3.1-70b", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    for key in (
        "total_params",
        "active_params",
        "weight_bytes",
        "kv_bytes_per_token",
        "num_layers",
        "num_nodes",
    ):
        assert key in info
    # 80 layers, embed + 2 per layer + lm_head nodes, 327,680 KV bytes per token (see above)
    assert (info["num_layers"], info["num_nodes"], info["kv_bytes_per_token"]) == (80, 162, 327_680)
    assert info["weight_bytes"] == pytest.approx(2 * 70.55e9, rel=0.005)


@pytest.mark.parametrize("dtypes", [("bf16", "bf16"), ("fp8", "fp8")])
def test_model_facts_without_the_graph_equal_the_graphs(dtypes):
    """`planner model info` reads its facts from the node list (load_model_facts, no networkx); they are
    the facts of the built NetworkX graph (Model.info) for every shipped model."""
    from planner.model.config import GRAPHS_DIR
    from planner.model.graph import load_model, load_model_facts

    names = sorted(p.stem for p in GRAPHS_DIR.glob("*.json"))
    assert len(names) >= 5
    for name in names:
        assert load_model_facts(name, *dtypes) == load_model(name, *dtypes).info(), name


def test_model_info_table(cli):
    result = cli(["model", "info", "mixtral-8x7b"])
    assert result.exit_code == 0, result.output
    assert "46.703 B" in result.output and "8 (2)" in result.output


@pytest.mark.parametrize("suffix", [".graphml", ".json"])
def test_model_graph_round_trip(cli, tmp_path: Path, suffix: str):
    out = tmp_path / f"graph{suffix}"
    result = cli(["model", "graph", "mixtral-8x7b", "--out", out])
    assert result.exit_code == 0, result.output
    if suffix == ".graphml":
        graph = nx.read_graphml(out)
    else:
        graph = nx.node_link_graph(json.loads(out.read_text()), edges="edges")
    original = load_model("mixtral-8x7b").graph
    assert graph.number_of_nodes() == original.number_of_nodes() == 66
    assert list(graph.nodes) == list(original.nodes)
    assert float(graph.nodes["L0.moe"]["expert_bytes"]) == original.nodes["L0.moe"]["expert_bytes"]


def test_model_commands_bad_input(cli, input_error, tmp_path: Path):
    input_error(cli(["model", "info", "no-such-model"]), "no such model")
    input_error(cli(["model", "graph", "llama-3.1-8b", "--out", tmp_path / "g.txt"]), ".graphml or .json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"hidden_size": 4096,')
    input_error(cli(["model", "info", bad]), str(bad), "not valid JSON")
