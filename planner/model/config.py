"""Hugging Face config.json: the fields the planner reads, validated (HFConfig), HF's defaults per
architecture (ARCHITECTURES), and where a model's config file is found (graphs/ names or paths).

A config file is read as Hugging Face transformers reads it: its `model_type` selects the architecture,
a field the file leaves out takes that architecture's default in transformers (for example
`tie_word_embeddings` is True for Gemma and False for Llama; Qwen2 puts a bias on q, k and v whatever the
file says), and the sliding-window layers follow the architecture's own rule (`layer_types`, Gemma 2's
alternation, Gemma 3's `sliding_window_pattern`, Qwen2's `use_sliding_window` / `max_window_layers`,
Mistral's window on every layer). Each architecture below cites the transformers files it follows
(src/transformers/models/<type>/configuration_<type>.py and modeling_<type>.py). A model_type not listed,
or a field that changes the model's shape in some architecture but is not read by this one (experts on a
Llama, `n_group` outside DeepSeek), is an input error naming it: the planner does not guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planner.core.errors import PlannerInputError, problems_from_validation
from planner.core.fileio import catalog_file, project_root

GRAPHS_DIR = project_root() / "graphs"
MAX_COUNT = 10_000_000  # anything above this in a config count field is a typo

# ---------------------------------------------------------------------------------------------- architectures

MOE_FIELDS = frozenset(
    {
        "n_routed_experts",
        "num_local_experts",
        "num_experts",
        "num_experts_per_tok",
        "moe_intermediate_size",
        "n_shared_experts",
        "shared_expert_intermediate_size",
        "first_k_dense_replace",
        "moe_layer_freq",
        "decoder_sparse_step",
        "mlp_only_layers",
    }
)
MLA_FIELDS = frozenset({"q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"})
WINDOW_FIELDS = frozenset(
    {"sliding_window", "use_sliding_window", "max_window_layers", "layer_types", "sliding_window_pattern"}
)
# Fields that change a model's shape or its KV cache in some transformers architecture. Each architecture
# lists those it reads; one set in a config of another architecture is an error (HF would ignore it, or
# it belongs to a model the planner does not describe).
SHAPE_FIELDS = (
    MOE_FIELDS
    | MLA_FIELDS
    | WINDOW_FIELDS
    | {
        "attention_bias",
        "mlp_bias",
        "n_group",  # DeepSeek group-limited routing
        "topk_group",
        "num_nextn_predict_layers",  # DeepSeek-V3 multi-token prediction module (not counted)
        "full_attention_interval",  # Qwen3-Next hybrid linear attention
        "linear_num_key_heads",
        "linear_num_value_heads",
        "global_head_dim",  # Gemma 4
        "num_kv_shared_layers",  # Gemma 3n
        "hidden_size_per_layer_input",
        "altup_num_inputs",
        "attention_chunk_size",  # Llama 4 chunked attention
        "no_rope_layers",
        "interleave_moe_layer_step",
        "partial_rotary_factor",  # harmless for shapes, but only known where listed
    }
)
UNSET = (None, False, 0, [], "")


@dataclass(frozen=True)
class Architecture:
    """How transformers builds one model_type, for what the planner counts.

    `defaults` are transformers' values for fields a config.json leaves out; `reads` the SHAPE_FIELDS its
    implementation reads. Windows: "none" (full attention everywhere), "every_layer" (`sliding_window` on
    every layer when set), "qwen" (`layer_types`, else sliding on layers i >= max_window_layers, and
    only with use_sliding_window), "alternate" (`layer_types`, else sliding on even layers i, Gemma 2),
    "pattern" (`layer_types`, else full on every `sliding_window_pattern`-th layer, Gemma 3), "any" (the
    generic rule of configs built in code: `layer_types`, else Qwen's fields, else `sliding_window` on
    every layer).
    """

    source: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    reads: frozenset[str] = frozenset()
    windows: str = "none"
    qkv_bias: bool = False  # q, k and v projections always carry a bias (Qwen2), whatever attention_bias says
    o_bias: bool = True  # attention_bias puts a bias on the output projection too (Llama, Gemma, Qwen3)
    attn_norms: int = 1  # RMSNorms per layer around attention (input_layernorm; Gemma 2/3 add post_attention)
    ffn_norms: int = 1  # ... around the FFN (post_attention_layernorm; Gemma 2/3: pre_ and post_feedforward)
    qk_norm: bool = False  # per-head RMSNorms of q and k (Qwen3, Gemma 3): 2 x head_dim weights


_QWEN_WINDOWS = frozenset({"sliding_window", "use_sliding_window", "max_window_layers", "layer_types"})
_QWEN_MOE = frozenset(
    {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "decoder_sparse_step", "mlp_only_layers"}
)
ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture(
        "llama/configuration_llama.py, modeling_llama.py: attention_bias on q, k, v, o; mlp_bias on gate, up, down",
        {"tie_word_embeddings": False},
        frozenset({"attention_bias", "mlp_bias"}),
    ),
    "mistral": Architecture(
        "mistral/configuration_mistral.py: sliding_window 4096 and 8 KV heads by default, every layer "
        "windowed; layer_types is ignored there (a warning), so it is refused here",
        {"tie_word_embeddings": False, "num_key_value_heads": 8, "sliding_window": 4096},
        frozenset({"sliding_window"}),
        windows="every_layer",
    ),
    "mixtral": Architecture(
        "mixtral/configuration_mixtral.py: 8 local experts, 2 per token, 8 KV heads, no window by default",
        {
            "tie_word_embeddings": False,
            "num_key_value_heads": 8,
            "num_local_experts": 8,
            "num_experts_per_tok": 2,
        },
        frozenset({"sliding_window", "num_local_experts", "num_experts_per_tok"}),
        windows="every_layer",
    ),
    "qwen2": Architecture(
        "qwen2/configuration_qwen2.py, modeling_qwen2.py: q, k, v with bias, o without; 32 KV heads; "
        "sliding_window only with use_sliding_window, on layers >= max_window_layers (28) unless layer_types",
        {
            "tie_word_embeddings": False,
            "num_key_value_heads": 32,
            "use_sliding_window": False,
            "sliding_window": 4096,
            "max_window_layers": 28,
        },
        _QWEN_WINDOWS,
        windows="qwen",
        qkv_bias=True,
        o_bias=False,
    ),
    "qwen2_moe": Architecture(
        "qwen2_moe/configuration_qwen2_moe.py: q, k, v with bias; one shared expert with a sigmoid gate; "
        "sliding windows are refused (not modelled for this type)",
        {"tie_word_embeddings": False, "num_key_value_heads": 16},
        frozenset(_QWEN_MOE | {"shared_expert_intermediate_size", "use_sliding_window", "sliding_window"}),
        qkv_bias=True,
        o_bias=False,
    ),
    "qwen3": Architecture(
        "qwen3/configuration_qwen3.py: head_dim 128 and 32 KV heads by default, q_norm and k_norm; windows "
        "as Qwen2",
        {
            "tie_word_embeddings": False,
            "num_key_value_heads": 32,
            "head_dim": 128,
            "use_sliding_window": False,
            "sliding_window": 4096,
            "max_window_layers": 28,
        },
        frozenset(_QWEN_WINDOWS | {"attention_bias"}),
        windows="qwen",
        qk_norm=True,
    ),
    "qwen3_moe": Architecture(
        "qwen3_moe/configuration_qwen3_moe.py: 128 experts, 8 per token, 768 wide, 4 KV heads, q_norm and "
        "k_norm; use_sliding_window is refused (not modelled for this type)",
        {
            "tie_word_embeddings": False,
            "num_key_value_heads": 4,
            "num_experts": 128,
            "num_experts_per_tok": 8,
            "moe_intermediate_size": 768,
        },
        frozenset(_QWEN_MOE | {"attention_bias", "sliding_window", "max_window_layers"}),
        qk_norm=True,
    ),
    "gemma": Architecture(
        "gemma/configuration_gemma.py: tied embeddings, head_dim 256, 16 KV heads by default",
        {"tie_word_embeddings": True, "head_dim": 256, "num_key_value_heads": 16},
        frozenset({"attention_bias"}),
    ),
    "gemma2": Architecture(
        "gemma2/configuration_gemma2.py, modeling_gemma2.py: tied embeddings, head_dim 256, 4 KV heads, "
        "sliding_window 4096 on even layers ((i + 1) % 2), four RMSNorms per layer",
        {"tie_word_embeddings": True, "head_dim": 256, "num_key_value_heads": 4, "sliding_window": 4096},
        frozenset({"attention_bias", "sliding_window", "layer_types"}),
        windows="alternate",
        attn_norms=2,
        ffn_norms=2,
    ),
    "gemma3_text": Architecture(
        "gemma3/configuration_gemma3.py (Gemma3TextConfig), modeling_gemma3.py: tied embeddings, head_dim "
        "256, 4 KV heads, sliding_window 4096 except every sliding_window_pattern-th layer (6), q_norm and "
        "k_norm, four RMSNorms per layer",
        {
            "tie_word_embeddings": True,
            "head_dim": 256,
            "num_key_value_heads": 4,
            "sliding_window": 4096,
            "sliding_window_pattern": 6,
        },
        frozenset({"attention_bias", "sliding_window", "layer_types", "sliding_window_pattern"}),
        windows="pattern",
        attn_norms=2,
        ffn_norms=2,
        qk_norm=True,
    ),
    "phi3": Architecture(
        "phi3/configuration_phi3.py, modeling_phi3.py: fused qkv_proj and gate_up_proj (the same shapes as "
        "separate q, k, v and gate, up), no biases, sliding_window (none by default) on every layer",
        {"tie_word_embeddings": False},
        frozenset({"sliding_window"}),
        windows="every_layer",
    ),
    "deepseek_v3": Architecture(
        "deepseek_v3/configuration_deepseek_v3.py: MLA, routed and shared experts, first_k_dense_replace "
        "dense layers; group-limited routing (n_group, topk_group) does not change shapes; the MTP module "
        "(num_nextn_predict_layers) is not counted; attention_bias (on its low-rank projections) is refused",
        {"tie_word_embeddings": False},
        frozenset(
            (MOE_FIELDS - {"num_local_experts", "num_experts", "decoder_sparse_step", "mlp_only_layers"})
            | MLA_FIELDS
            | {"n_group", "topk_group", "num_nextn_predict_layers"}
        ),
    ),
}
# configs built in code (tests, the Python API) may leave model_type empty: every field is read as named
GENERIC = Architecture(
    "no model_type: every field the planner knows is read as it is named",
    reads=SHAPE_FIELDS,
    windows="any",
)
WRAPPERS = {"gemma3": "text_config"}  # multimodal configs: the decoder is their text_config


def _set(value: Any) -> bool:
    return not any(value is u or (type(value) is type(u) and value == u) for u in UNSET)


def _brief(value: Any) -> str:
    """A short description of a value for a message (a list by its length, never its whole repr)."""
    if isinstance(value, (list, dict)):
        return f"{type(value).__name__} of {len(value)} entries"
    return repr(value) if isinstance(value, (bool, int, float)) else f"{type(value).__name__}"


def _architecture_problems(data: dict[str, Any]) -> list[str]:
    """Unknown model_type, or shape fields the architecture does not read (each named)."""
    kind = data.get("model_type", "")
    if not isinstance(kind, str):
        return [f"model_type: expected a name such as 'llama' (got {_brief(kind)})"]
    if kind == "":
        return []
    if kind not in ARCHITECTURES:
        return [
            f"model_type: {kind!r} is not a supported architecture; supported: {', '.join(sorted(ARCHITECTURES))} "
            "(each follows its Hugging Face transformers implementation; a config of another architecture "
            "could count parameters or KV wrongly, so it is refused)"
        ]
    arch = ARCHITECTURES[kind]
    return [
        f"{name}: set ({_brief(data[name])}), but model_type {kind!r} does not read it in Hugging Face "
        "transformers, and it changes the shape where it is read; remove it or use the model_type it "
        "belongs to"
        for name in sorted(SHAPE_FIELDS - arch.reads)
        if name in data and _set(data[name])
    ]


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
    tie_word_embeddings: bool = False  # the architecture's default when the file leaves it out
    attention_bias: bool = False
    mlp_bias: bool = False
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
    mlp_only_layers: list[int] = Field(default_factory=list, max_length=10_000)
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
    sliding_window_pattern: int | None = Field(default=None, gt=0, le=10_000)

    @model_validator(mode="before")
    @classmethod
    def _architecture_defaults(cls, data: Any) -> Any:
        """Fill what the file leaves out with its architecture's transformers defaults; refuse an unknown
        model_type and shape fields the architecture does not read (all problems at once)."""
        if not isinstance(data, dict):
            return data
        problems = _architecture_problems(data)
        if problems:
            raise ValueError("; ".join(problems))
        return {**architecture(data.get("model_type", "")).defaults, **data}

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

    @property
    def arch(self) -> Architecture:
        return architecture(self.model_type)

    def window(self, i: int) -> int | None:
        """Sliding-window length of block i in tokens, or None for full attention (the architecture's
        rule, see Architecture)."""
        rule, w = self.arch.windows, self.sliding_window
        if not w or rule == "none":
            return None
        if rule == "every_layer":
            return w
        if rule == "qwen" and not self.use_sliding_window:  # transformers sets sliding_window to None
            return None
        if self.layer_types is not None:
            return w if self.layer_types[i] == "sliding_attention" else None
        if rule == "alternate":
            return w if (i + 1) % 2 else None
        if rule == "pattern":
            return w if (i + 1) % (self.sliding_window_pattern or 6) else None
        if rule == "qwen":
            return w if i >= (self.max_window_layers or 0) else None
        # "any": configs built in code
        if self.use_sliding_window is not False:
            if self.max_window_layers is not None and self.use_sliding_window:
                return w if i >= self.max_window_layers else None
            return w
        return None

    def attention_extra_params(self) -> int:
        """Parameters of an attention block beside its projection matrices: its RMSNorms, the q/k norms
        and the projection biases, as the architecture has them."""
        a, h, d = self.arch, self.hidden_size, self.attn_head_dim
        heads, kv_heads = self.num_attention_heads, self.num_key_value_heads or self.num_attention_heads
        extra = a.attn_norms * h + (2 * d if a.qk_norm else 0)
        if a.qkv_bias or self.attention_bias:
            extra += heads * d + 2 * kv_heads * d
        if self.attention_bias and a.o_bias:
            extra += h
        return extra

    def ffn_extra_params(self) -> int:
        """Parameters of a dense FFN block beside its matrices: its RMSNorms and (mlp_bias) the biases
        of gate, up and down."""
        h = self.hidden_size
        return self.arch.ffn_norms * h + ((2 * self.intermediate_size + h) if self.mlp_bias else 0)


def architecture(model_type: str) -> Architecture:
    """The Architecture of a model_type (GENERIC for configs built in code without one)."""
    return ARCHITECTURES.get(model_type, GENERIC) if isinstance(model_type, str) else GENERIC


def parse_config(data: dict[str, Any], source: str | Path) -> HFConfig:
    """A config.json's content as the planner reads it: a multimodal wrapper's text_config is the
    decoder (its vision tower is not counted); model_type is required. Problems raise PlannerInputError
    naming `source` and each field."""
    if isinstance(data.get("text_config"), dict):  # multimodal wrappers keep the decoder here
        data = {**{k: v for k, v in data.items() if k != "model_type"}, **data["text_config"]}
    if not data.get("model_type"):
        raise PlannerInputError(
            source,
            [
                "model_type: required field is missing; it selects Hugging Face's defaults for the fields "
                f"the file leaves out (one of {', '.join(sorted(ARCHITECTURES))})"
            ],
        )
    problems = _architecture_problems(data)
    if problems:
        raise PlannerInputError(source, problems)
    try:
        return HFConfig.model_validate(data)
    except ValidationError as exc:
        raise PlannerInputError(source, problems_from_validation(exc)) from None


def shipped_models() -> list[str]:
    """Names of the configs in graphs/."""
    return sorted(p.stem for p in GRAPHS_DIR.glob("*.json"))


def model_sources() -> dict[str, str]:
    """Where each shipped config comes from: the `| file.json | source |` rows of graphs/SOURCES.md."""
    rows = {}
    for line in (GRAPHS_DIR / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].endswith(".json"):
            rows[cells[0].removesuffix(".json")] = cells[1].replace("`", "")
    return rows


def resolve_config_path(name_or_path: str | Path) -> Path:
    """graphs/NAME.json for a catalog name, else a path to a .json (or .yaml) file or to a folder holding
    a config.json (a downloaded checkpoint)."""
    return catalog_file(GRAPHS_DIR, name_or_path, "model", (".json", ".yaml", ".yml"))
