"""Model descriptions (HF config.json field names) and the layer graph the planner places.

A model is named by a file in graphs/ ("llama-3.1-70b") or by a path to any HF config.json.
`build_graph` returns a networkx.DiGraph whose nodes are in execution order:
embed, then per block L{i}.attn and L{i}.ffn (dense) or L{i}.moe (mixture of experts), then lm_head.
All node attributes are per token (per user) and carry their unit in the name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planner.errors import PlannerInputError, problems_from_validation
from planner.fileio import is_file, project_root, read_mapping
from planner.units import dtype_bytes

GRAPHS_DIR = project_root() / "graphs"
MAX_COUNT = 10_000_000  # anything above this in a config count field is a typo


class HFConfig(BaseModel):
    """The fields of a Hugging Face config.json that the planner reads; other fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model_type: str = ""
    hidden_size: int = Field(gt=0, le=MAX_COUNT)
    num_hidden_layers: int = Field(gt=0, le=10_000)  # the largest published models have ~100-200
    num_attention_heads: int = Field(gt=0, le=MAX_COUNT)
    num_key_value_heads: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    head_dim: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    intermediate_size: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    vocab_size: int = Field(gt=0, le=100_000_000)
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    # mixture of experts (DeepSeek, Mixtral and Qwen spellings)
    n_routed_experts: int | None = Field(default=None, ge=0, le=1_000_000)
    num_local_experts: int | None = Field(default=None, ge=0, le=1_000_000)
    num_experts: int | None = Field(default=None, ge=0, le=1_000_000)
    num_experts_per_tok: int | None = Field(default=None, ge=0, le=1_000_000)
    moe_intermediate_size: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    n_shared_experts: int | None = Field(default=None, ge=0, le=1_000)
    shared_expert_intermediate_size: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    first_k_dense_replace: int = Field(default=0, ge=0)
    moe_layer_freq: int = Field(default=1, gt=0)
    decoder_sparse_step: int = Field(default=1, gt=0)
    mlp_only_layers: list[int] = Field(default_factory=list)
    # multi-head latent attention (DeepSeek-V2/V3)
    q_lora_rank: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    kv_lora_rank: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    qk_nope_head_dim: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    qk_rope_head_dim: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    v_head_dim: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    # sliding-window attention
    sliding_window: int | None = Field(default=None, gt=0, le=2**40)
    use_sliding_window: bool | None = None
    max_window_layers: int | None = Field(default=None, ge=0)
    layer_types: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HFConfig:
        problems = []
        kv_heads = self.num_key_value_heads or self.num_attention_heads
        if self.num_attention_heads % kv_heads:
            problems.append(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({kv_heads})"
            )
        experts = self.experts
        if experts:
            if not self.num_experts_per_tok:
                problems.append("num_experts_per_tok is missing or 0 for a mixture-of-experts model")
            elif self.num_experts_per_tok > experts:
                problems.append(
                    f"num_experts_per_tok ({self.num_experts_per_tok}) exceeds the number of experts ({experts})"
                )
            if not (self.moe_intermediate_size or self.intermediate_size):
                problems.append("moe_intermediate_size (or intermediate_size) is needed for experts")
        if self.intermediate_size is None:
            dense = [i for i in range(self.num_hidden_layers) if not self.is_moe_layer(i)]
            if dense:
                problems.append(
                    f"intermediate_size is required: {len(dense)} layer(s) have a dense FFN (first: layer {dense[0]})"
                )
        if self.head_dim is None and self.hidden_size < self.num_attention_heads:
            problems.append(
                f"hidden_size ({self.hidden_size}) is smaller than num_attention_heads "
                f"({self.num_attention_heads}); give head_dim"
            )
        if self.kv_lora_rank is not None and None in (
            self.qk_rope_head_dim,
            self.qk_nope_head_dim,
            self.v_head_dim,
        ):
            problems.append("MLA (kv_lora_rank) also needs qk_nope_head_dim, qk_rope_head_dim and v_head_dim")
        if self.layer_types is not None:
            if len(self.layer_types) != self.num_hidden_layers:
                problems.append(
                    f"layer_types has {len(self.layer_types)} entries, num_hidden_layers is {self.num_hidden_layers}"
                )
            bad = sorted(set(self.layer_types) - {"full_attention", "sliding_attention"})
            if bad:
                problems.append(f"layer_types has {bad}; expected 'full_attention' or 'sliding_attention'")
            if "sliding_attention" in self.layer_types and not self.sliding_window:
                problems.append("layer_types has sliding_attention layers but sliding_window is not set")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def experts(self) -> int:
        """Routed experts per MoE layer (0 for a dense model)."""
        return self.n_routed_experts or self.num_local_experts or self.num_experts or 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def attn_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    def is_moe_layer(self, i: int) -> bool:
        """Whether block i has a routed-experts FFN (DeepSeek first_k_dense_replace/moe_layer_freq, Qwen rules)."""
        if not self.experts:
            return False
        if i < self.first_k_dense_replace or i % self.moe_layer_freq:
            return False
        return i not in self.mlp_only_layers and (i + 1) % self.decoder_sparse_step == 0

    def window(self, i: int) -> int | None:
        """Sliding-window length of block i in tokens, or None for full attention."""
        if self.layer_types is not None:
            return self.sliding_window if self.layer_types[i] == "sliding_attention" else None
        if self.sliding_window and self.use_sliding_window is not False:
            if self.max_window_layers is not None and self.use_sliding_window:
                return self.sliding_window if i >= self.max_window_layers else None
            return self.sliding_window
        return None


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
        return float(sum(d[attr] for _, d in self.graph.nodes(data=True)))

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
        c = self.config
        return {
            "model": self.name,
            "total_params": self.total_params,
            "active_params": self.active_params,
            "weight_bytes": self.weight_bytes,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "num_layers": c.num_hidden_layers,
            "num_nodes": self.graph.number_of_nodes(),
            "experts": c.experts,
            "experts_per_tok": c.num_experts_per_tok or 0,
            "moe_layers": sum(c.is_moe_layer(i) for i in range(c.num_hidden_layers)),
            "weight_dtype": self.dtypes.weight,
            "kv_dtype": self.dtypes.kv,
        }


def kv_tokens(node: dict, context: int) -> int:
    """Context tokens whose KV a node holds per user: min(context, window) on sliding-window layers."""
    window = node.get("kv_window_tokens") or 0
    return min(context, window) if window else context


def _attention_node(c: HFConfig, i: int, dt: Dtypes) -> dict:
    h = c.hidden_size
    heads = c.num_attention_heads
    if c.is_mla:
        qk_dim = c.qk_nope_head_dim + c.qk_rope_head_dim
        if c.q_lora_rank:
            q_params = h * c.q_lora_rank + c.q_lora_rank + c.q_lora_rank * heads * qk_dim
        else:
            q_params = h * heads * qk_dim
        kv_params = h * (c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank
        kv_params += c.kv_lora_rank * heads * (c.qk_nope_head_dim + c.v_head_dim)
        o_params = heads * c.v_head_dim * h
        matmul = q_params + kv_params + o_params
        kv_values = c.kv_lora_rank + c.qk_rope_head_dim  # the compressed latent and the shared rope key
        # absorbed MLA decode: scores over (kv_lora_rank + rope) and values over kv_lora_rank, per head
        attn_flops = 2 * heads * (c.kv_lora_rank + c.qk_rope_head_dim) + 2 * heads * c.kv_lora_rank
    else:
        d = c.attn_head_dim
        kv_heads = c.num_key_value_heads or heads
        matmul = h * heads * d + 2 * h * kv_heads * d + heads * d * h
        if c.attention_bias:
            matmul += heads * d + 2 * kv_heads * d
        if c.model_type.startswith("qwen3"):
            matmul += 2 * d  # q_norm and k_norm
        kv_values = 2 * kv_heads * d
        attn_flops = 4 * heads * d  # QK^T and PV: 2 FLOPs per multiply-add each
    params = matmul + h  # + input_layernorm
    return dict(
        kind="attn",
        layer=i,
        params=params,
        active_params=params,
        weight_bytes=params * dt.weight_bytes,
        kv_bytes_per_token=kv_values * dt.kv_bytes,
        kv_window_tokens=c.window(i) or 0,
        flops_per_token=2.0 * matmul,
        attn_flops_per_ctx_token=float(attn_flops),
        attention_work_items=heads,
        allreduce_bytes_per_token=h * dt.activation_bytes,
    )


def _ffn_node(c: HFConfig, i: int, dt: Dtypes) -> dict:
    h = c.hidden_size
    matmul = 3 * h * c.intermediate_size  # gate, up, down (SwiGLU)
    params = matmul + h  # + post_attention_layernorm
    return dict(
        kind="ffn",
        layer=i,
        params=params,
        active_params=params,
        weight_bytes=params * dt.weight_bytes,
        flops_per_token=2.0 * matmul,
        allreduce_bytes_per_token=h * dt.activation_bytes,
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
        experts=experts,
        experts_per_tok=k,
        expert_bytes=expert * dt.weight_bytes,
        shared_bytes=always * dt.weight_bytes,
        allreduce_bytes_per_token=h * dt.activation_bytes,
    )


NODE_DEFAULTS = dict(
    kv_bytes_per_token=0.0,
    kv_window_tokens=0,
    flops_per_token=0.0,
    attn_flops_per_ctx_token=0.0,
    attention_work_items=0,
    experts=0,
    experts_per_tok=0,
    expert_bytes=0.0,
    shared_bytes=0.0,
    lookup_bytes_per_token=0.0,
    allreduce_bytes_per_token=0.0,
)


def build_graph(c: HFConfig, dt: Dtypes) -> nx.DiGraph:
    """The decode graph of one token: nodes in execution order, a chain of edges carrying activations."""
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
                allreduce_bytes_per_token=h * dt.activation_bytes,
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
                allreduce_bytes_per_token=v * dt.activation_bytes,  # gather of vocabulary-parallel logits
            ),
        )
    )
    graph = nx.DiGraph(name="decode")
    for order, (name, attrs) in enumerate(nodes):
        full = {**NODE_DEFAULTS, **attrs, "order": order, "compute_dtype": dt.weight}
        graph.add_node(
            name,
            **{k: (float(x) if isinstance(x, int) and k not in _INT_ATTRS else x) for k, x in full.items()},
        )
    for (a, _), (b, _) in zip(nodes, nodes[1:]):
        graph.add_edge(a, b, activation_bytes=float(h * dt.activation_bytes))
    return graph


_INT_ATTRS = {"layer", "order", "experts", "experts_per_tok", "kv_window_tokens", "attention_work_items"}


def resolve_config_path(name_or_path: str | Path) -> Path:
    """graphs/NAME.json for a shipped name, else the path itself."""
    text = str(name_or_path)
    shipped = GRAPHS_DIR / f"{text}.json"
    if is_file(shipped):
        return shipped
    path = Path(text)
    if is_file(path / "config.json"):
        return path / "config.json"
    if is_file(path):
        return path
    names = ", ".join(sorted(p.stem for p in GRAPHS_DIR.glob("*.json")))
    raise PlannerInputError(text, [f"no such model: expected one of {names}, or a path to an HF config.json"])


def load_model(
    name_or_path: str | Path,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    activation_dtype: str = "bf16",
) -> Model:
    """Read a model description and build its graph. Bad input raises PlannerInputError naming file and field."""
    path = resolve_config_path(name_or_path)
    data = read_mapping(path)
    if isinstance(data.get("text_config"), dict):  # multimodal wrappers keep the decoder here
        data = {**data, **data["text_config"]}
    try:
        config = HFConfig.model_validate(data)
    except ValidationError as exc:
        raise PlannerInputError(path, problems_from_validation(exc)) from None
    try:
        dtypes = Dtypes(weight_dtype, kv_dtype, activation_dtype)
        for d in (dtypes.weight, dtypes.kv, dtypes.activation):
            dtype_bytes(d)
    except ValueError as exc:
        raise PlannerInputError("--weight-dtype/--kv-dtype", [str(exc)]) from None
    name = path.stem if path.parent == GRAPHS_DIR else str(path)
    return Model(name=name, config=config, dtypes=dtypes, graph=build_graph(config, dtypes))
