"""Model descriptions (HF config.json field names) and the layer graph the planner places.

A model is named by a file in graphs/ ("llama-3.1-70b") or by a path to any HF config.json.
`build_graph` returns a networkx.DiGraph whose nodes are in execution order:
embed, then per block L{i}.attn and L{i}.ffn (dense) or L{i}.moe (mixture of experts), then lm_head.
All node attributes are per token (per user) and carry their unit in the name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from planner.core.errors import PlannerInputError
from planner.core.fileio import read_mapping
from planner.core.units import dtype_bytes
from planner.model.config import GRAPHS_DIR, HFConfig, parse_config, resolve_config_path

if TYPE_CHECKING:  # networkx is imported where a graph is built: `planner model info` needs none
    import networkx as nx


@dataclass(frozen=True)
class Dtypes:
    """Bytes per value of weights, KV cache and activations."""

    weight: str = "bf16"
    kv: str = "bf16"
    activation: str = "bf16"

    @property
    def weight_bytes(self) -> float:
        return dtype_bytes(self.weight)

    @property
    def kv_bytes(self) -> float:
        return dtype_bytes(self.kv)

    @property
    def activation_bytes(self) -> float:
        return dtype_bytes(self.activation)


@dataclass(frozen=True)
class Model:
    """A model description, its dtypes and its layer graph."""

    name: str
    config: HFConfig
    dtypes: Dtypes
    graph: nx.DiGraph = field(repr=False, compare=False)

    @property
    def nodes(self) -> list[str]:
        return list(self.graph.nodes)

    def total(self, attr: str) -> float:
        return _total((d for _, d in self.graph.nodes(data=True)), attr)

    @property
    def total_params(self) -> float:
        """Parameters stored (a tied embedding counted once)."""
        return self.total("params")

    @property
    def active_params(self) -> float:
        """Parameters used per token (routed experts: only the experts_per_tok chosen)."""
        return self.total("active_params")

    @property
    def weight_bytes(self) -> float:
        """Bytes of weights resident when every node holds its own (a tied lm_head holds a copy)."""
        return self.total("weight_bytes")

    @property
    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes per user per context token, all layers (sliding layers counted as full)."""
        return self.total("kv_bytes_per_token")

    def kv_bytes_per_user(self, context: int) -> float:
        """KV-cache bytes held per user at `context` tokens, sliding windows applied."""
        return float(
            sum(d["kv_bytes_per_token"] * kv_tokens(d, context) for _, d in self.graph.nodes(data=True))
        )

    def info(self) -> dict[str, float | int | str]:
        """Its facts (model_facts) from its graph's nodes."""
        return model_facts(self.name, self.config, self.dtypes, (d for _, d in self.graph.nodes(data=True)))


def _total(nodes: Iterable[dict], attr: str) -> float:
    return float(sum(d[attr] for d in nodes))


def model_facts(
    name: str, c: HFConfig, dtypes: Dtypes, nodes: Iterable[dict]
) -> dict[str, float | int | str]:
    """Parameters (stored, and active per token), weight bytes, KV bytes per token per user (all layers),
    layers, graph nodes, experts and MoE layers of a model whose nodes' attributes are `nodes`."""
    nodes = list(nodes)
    return {
        "model": name,
        "total_params": _total(nodes, "params"),  # stored (a tied embedding counted once)
        "active_params": _total(nodes, "active_params"),  # used per token (routed: experts_per_tok)
        "weight_bytes": _total(nodes, "weight_bytes"),  # resident, every node its own (Model.weight_bytes)
        "kv_bytes_per_token": _total(nodes, "kv_bytes_per_token"),  # per user, sliding layers as full
        "num_layers": c.num_hidden_layers,
        "num_nodes": len(nodes),
        "experts": c.experts,
        "experts_per_tok": c.num_experts_per_tok or 0,
        "moe_layers": sum(c.is_moe_layer(i) for i in range(c.num_hidden_layers)),
        "weight_dtype": dtypes.weight,
        "kv_dtype": dtypes.kv,
    }


def kv_tokens(node: dict, context: int) -> int:
    """Context tokens whose KV a node holds per user: min(context, window) on sliding-window layers."""
    window = node.get("kv_window_tokens") or 0
    return min(context, window) if window else context


def _attention_node(c: HFConfig, i: int, dt: Dtypes) -> dict:
    """Attention of block i: its projections (q/k/v in, o out) and the attention core over the KV cache.

    The node carries its parts for sub-layer splitting (planner.model.split): `qkv_params` (input side,
    with the norms and biases), `o_params` (output projection), their FLOPs per token, the values passed
    between them per token, and
    how the core splits: by KV heads (GQA/MHA: each head group's cache with its heads) or, for MLA, by
    users (the compressed latent is shared by all heads, so only users can be separated)."""
    h = c.hidden_size
    heads = c.num_attention_heads
    if c.is_mla:
        qk_dim = c.qk_nope_head_dim + c.qk_rope_head_dim
        if c.q_lora_rank:
            q_params = h * c.q_lora_rank + c.q_lora_rank + c.q_lora_rank * heads * qk_dim
        else:
            q_params = h * heads * qk_dim
        kv_down = h * (c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank
        w_uk = c.kv_lora_rank * heads * c.qk_nope_head_dim  # absorbed into the query in decode
        w_uv = c.kv_lora_rank * heads * c.v_head_dim  # absorbed into the output in decode
        qkv_params = q_params + kv_down + w_uk
        o_params = w_uv + heads * c.v_head_dim * h
        kv_values = c.kv_lora_rank + c.qk_rope_head_dim  # the compressed latent and the shared rope key
        # absorbed MLA decode: scores over (kv_lora_rank + rope) and values over kv_lora_rank, per head
        attn_flops = 2 * heads * (c.kv_lora_rank + c.qk_rope_head_dim) + 2 * heads * c.kv_lora_rank
        qkv_out = heads * (c.kv_lora_rank + c.qk_rope_head_dim) + kv_values
        attn_out = heads * c.kv_lora_rank
        kv_heads, split_by = 1, "users"
    else:
        d = c.attn_head_dim
        kv_heads = c.num_key_value_heads or heads
        qkv_params = h * heads * d + 2 * h * kv_heads * d
        o_params = heads * d * h
        kv_values = 2 * kv_heads * d
        attn_flops = 4 * heads * d  # QK^T and PV: 2 FLOPs per multiply-add each
        qkv_out = (heads + 2 * kv_heads) * d
        attn_out = heads * d
        split_by = "heads"
    qkv_flops, o_flops = 2.0 * qkv_params, 2.0 * o_params
    qkv_params += c.attention_extra_params()  # + norms and biases, as the architecture has them
    params = qkv_params + o_params
    return dict(
        kind="attn",
        layer=i,
        params=params,
        active_params=params,
        weight_bytes=params * dt.weight_bytes,
        kv_bytes_per_token=kv_values * dt.kv_bytes,
        kv_window_tokens=c.window(i) or 0,
        flops_per_token=qkv_flops + o_flops,
        attn_flops_per_ctx_token=float(attn_flops),
        attention_work_items=heads,
        collective="all-reduce",
        collective_bytes_per_token=h * dt.activation_bytes,
        qkv_params=float(qkv_params),
        o_params=float(o_params),
        qkv_flops_per_token=qkv_flops,
        o_flops_per_token=o_flops,
        qkv_out_values=float(qkv_out),
        attn_out_values=float(attn_out),
        heads=heads,
        kv_heads=kv_heads,
        split_by=split_by,
    )


def _ffn_node(c: HFConfig, i: int, dt: Dtypes) -> dict:
    h = c.hidden_size
    matmul = 3 * h * c.intermediate_size  # gate, up, down (SwiGLU; Phi-3's fused gate_up: the same shapes)
    params = matmul + c.ffn_extra_params()  # + norms (and mlp biases)
    return dict(
        kind="ffn",
        layer=i,
        params=params,
        active_params=params,
        weight_bytes=params * dt.weight_bytes,
        flops_per_token=2.0 * matmul,
        collective="all-reduce",
        collective_bytes_per_token=h * dt.activation_bytes,
    )


def _moe_node(c: HFConfig, i: int, dt: Dtypes) -> dict:
    h = c.hidden_size
    experts, k = c.experts, c.num_experts_per_tok
    expert = 3 * h * (c.moe_intermediate_size or c.intermediate_size)
    router = h * experts + (experts if c.model_type == "deepseek_v3" else 0)  # + e_score_correction_bias
    shared = (c.n_shared_experts or 0) * expert
    if c.shared_expert_intermediate_size:  # Qwen2-MoE: one shared expert of its own size and a gate
        shared += 3 * h * c.shared_expert_intermediate_size + h
    always = shared + router + h  # + post_attention_layernorm
    return dict(
        kind="moe",
        layer=i,
        params=always + experts * expert,
        active_params=always + k * expert,
        weight_bytes=(always + experts * expert) * dt.weight_bytes,
        flops_per_token=2.0 * (shared + router + k * expert),
        experts=float(experts),
        experts_per_tok=float(k),
        expert_bytes=expert * dt.weight_bytes,
        shared_bytes=always * dt.weight_bytes,
        collective="moe",  # dispatch/combine or all-reduce: the hardware's moe_dispatch decides
        collective_bytes_per_token=h * dt.activation_bytes,
    )


SAMPLE_CANDIDATE_BYTES = 8.0  # one (fp32 logit, int32 token id) pair per candidate a shard reports


NODE_DEFAULTS = dict(
    kv_bytes_per_token=0.0,
    kv_window_tokens=0,
    flops_per_token=0.0,
    attn_flops_per_ctx_token=0.0,
    attention_work_items=0.0,
    experts=0.0,
    experts_per_tok=0.0,
    expert_bytes=0.0,
    shared_bytes=0.0,
    lookup_bytes_per_token=0.0,
    collective="",
    collective_bytes_per_token=0.0,
    op="",
    first=True,
    part=0,
    parts=1,
)


def decode_nodes(c: HFConfig, dt: Dtypes, sample_top_k: int = 1) -> list[tuple[str, dict]]:
    """The decode graph's nodes, (name, attributes) in execution order (build_graph).

    Sampling as servers do it: the LM head is vocabulary-parallel and each shard reports its local
    top-`sample_top_k` candidates (SAMPLE_CANDIDATE_BYTES each) instead of gathering the full logits."""
    h, v = c.hidden_size, c.vocab_size
    nodes: list[tuple[str, dict]] = [
        (
            "embed",
            dict(
                kind="embed",
                layer=-1,
                params=v * h,
                active_params=v * h,
                weight_bytes=v * h * dt.weight_bytes,
                lookup_bytes_per_token=h * dt.weight_bytes,  # one row read per token
                collective="all-reduce",
                collective_bytes_per_token=h * dt.activation_bytes,
            ),
        )
    ]
    for i in range(c.num_hidden_layers):
        nodes.append((f"L{i}.attn", _attention_node(c, i, dt)))
        if c.is_moe_layer(i):
            nodes.append((f"L{i}.moe", _moe_node(c, i, dt)))
        else:
            nodes.append((f"L{i}.ffn", _ffn_node(c, i, dt)))
    head_params = 0 if c.tie_word_embeddings else v * h
    nodes.append(
        (
            "lm_head",
            dict(
                kind="lm_head",
                layer=c.num_hidden_layers,
                params=head_params + h,  # + final norm
                active_params=head_params + h,
                weight_bytes=(v * h + h) * dt.weight_bytes,  # a tied head still reads the matrix
                flops_per_token=2.0 * v * h,
                collective="gather",  # each chip's local top-k candidates, not its logits
                collective_bytes_per_token=sample_top_k * SAMPLE_CANDIDATE_BYTES,
            ),
        )
    )
    out = []
    for order, (name, attrs) in enumerate(nodes):
        full = {**NODE_DEFAULTS, **attrs, "op": name, "order": order, "compute_dtype": dt.weight}
        out.append(
            (
                name,
                {k: (float(x) if isinstance(x, int) and k not in _INT_ATTRS else x) for k, x in full.items()},
            )
        )
    return out


def build_graph(c: HFConfig, dt: Dtypes, sample_top_k: int = 1) -> nx.DiGraph:
    """The decode graph of one token: nodes in execution order (decode_nodes), a chain of edges carrying
    activations."""
    import networkx as nx

    nodes = decode_nodes(c, dt, sample_top_k)
    graph = nx.DiGraph(name="decode", hidden_size=c.hidden_size, activation_value_bytes=dt.activation_bytes)
    graph.add_nodes_from(nodes)
    for (a, _), (b, _) in zip(nodes, nodes[1:]):
        graph.add_edge(a, b, activation_bytes=float(c.hidden_size * dt.activation_bytes))
    return graph


_INT_ATTRS = {"layer", "order", "kv_window_tokens", "heads", "kv_heads", "part", "parts", "first"}


def _read_model(
    name_or_path: str | Path, weight_dtype: str, kv_dtype: str, activation_dtype: str
) -> tuple[str, HFConfig, Dtypes]:
    """(the model's name, its parsed config, its dtypes); bad input raises PlannerInputError naming file
    and field."""
    path = resolve_config_path(name_or_path)
    config = parse_config(read_mapping(path), path)
    try:
        dtypes = Dtypes(weight_dtype, kv_dtype, activation_dtype)
        for d in (dtypes.weight, dtypes.kv, dtypes.activation):
            dtype_bytes(d)
    except ValueError as exc:
        raise PlannerInputError("--weight-dtype/--kv-dtype", [str(exc)]) from None
    return (path.stem if path.parent == GRAPHS_DIR else str(path)), config, dtypes


def load_model(
    name_or_path: str | Path,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    activation_dtype: str = "bf16",
    sample_top_k: int = 1,
) -> Model:
    """Read a model description and build its graph (see build_graph for `sample_top_k`). Bad input raises
    PlannerInputError naming file and field."""
    name, config, dtypes = _read_model(name_or_path, weight_dtype, kv_dtype, activation_dtype)
    return Model(name=name, config=config, dtypes=dtypes, graph=build_graph(config, dtypes, sample_top_k))


def load_model_facts(
    name_or_path: str | Path, weight_dtype: str = "bf16", kv_dtype: str = "bf16"
) -> dict[str, float | int | str]:
    """load_model(...).info() without building the NetworkX graph (`planner model info` imports no
    networkx): the same facts from the same nodes (decode_nodes)."""
    name, config, dtypes = _read_model(name_or_path, weight_dtype, kv_dtype, "bf16")
    return model_facts(name, config, dtypes, (d for _, d in decode_nodes(config, dtypes)))
