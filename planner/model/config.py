"""Hugging Face config.json: the fields the planner reads, validated (HFConfig), and where a model's
config file is found (graphs/ names or paths)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.core.fileio import catalog_file, project_root

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


def resolve_config_path(name_or_path: str | Path) -> Path:
    """graphs/NAME.json for a catalog name, else a path to a .json (or .yaml) file or to a folder holding
    a config.json (a downloaded checkpoint)."""
    return catalog_file(GRAPHS_DIR, name_or_path, "model", (".json", ".yaml", ".yml"))
