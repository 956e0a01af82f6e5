"""The one cost model, per node: what a decode step of one node costs on one chip group (FORMULATION §2).

Everything that prints a time or an energy (speed of light, the optimizer, the plan evaluator,
calibration) calls `node_cost` and `boundary_cost` here and planner.cost.pipeline for a whole placement;
there is no second copy of these formulas.

Time model of a node (stated once, used everywhere):
- a node has a *weight phase* (read its weights, do its matmuls) and a *context phase* (read the KV
  cache, attend over it); each runs on the unit of the group that runs that phase (planner.hardware:
  one unit on a GPU, an attention and a MAC unit on the seed's chip group). Inside a phase the tiers and
  the compute overlap (a roofline): phase time = max(bytes_t / rate_t for each tier t, FLOPs / rate of
  the phase's unit);
- what happens once per node in a group: a fixed overhead (kernel launch, calibrated; on the unit of
  the node's main phase) and, with several chips in the group, its collective on the intra-group link:
  a ring all-reduce of its output (2 (c-1)/c of the bytes per chip), the gather of the LM head's top-k
  candidates to one chip ((c-1) shards' bytes), or for MoE with `moe_dispatch: all-to-all` the dispatch
  and combine of each token's activation to and from the chips of its experts (on the A2E link). Each
  collective adds one synchronization latency. A node split into parts (planner.model.split) pays these
  once per group: its first part carries them (`first`), and a group starting inside a node pays them
  again (planner.cost.pipeline);
- the KV pull rate of attention is capped at micro-batch x work items x a calibrated rate per work item
  when the hardware says so (small batches leave a GPU's compute units idle).
Energy: bits moved per tier x (device + chip data-path pJ/bit), plus the chip's KV data-path pJ/bit on KV
bits only, FLOPs x pJ/FLOP of the unit, link bits x link pJ/bit; static power is counted per pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from planner.hardware.catalog import Hardware, Link
from planner.model.graph import kv_tokens

PJ = 1e-12
BITS_PER_BYTE = 8.0
CATEGORIES = ("weights", "kv", "compute", "links", "idle")
DYNAMIC = ("weights", "kv", "compute", "links")


def weight_read_bytes(node: Mapping, micro_batch: float) -> float:
    """Weight bytes read for one decode step of `micro_batch` users.

    Dense: all weights once. Embedding: one row per user. MoE: shared part plus the expected number of
    distinct experts touched, E * (1 - (1 - k/E)**b) (uniform routing).
    """
    if node["lookup_bytes_per_token"]:
        return min(node["weight_bytes"], micro_batch * node["lookup_bytes_per_token"])
    experts = node["experts"]
    if experts:
        touched = experts * (1.0 - (1.0 - node["experts_per_tok"] / experts) ** micro_batch)
        return node["shared_bytes"] + node["expert_bytes"] * touched
    return node["weight_bytes"]


@dataclass(frozen=True)
class NodeCost:
    """Cost of one node, one decode step of one micro-batch, on one chip group; linear in the tier split.

    `*_read_s[t]` and `*_j[t]` are the seconds and joules if all of the node's weights (or KV) sat in
    tier t; a split w[t] (fractions summing to 1) scales them. `*_tier_s[t]` is the same traffic at the
    tier's own rate (no per-kernel cap): what the tier is busy for when units overlap. `op_*` are what the
    node's op pays once per group (overhead on `main_unit`, collective on `collective_link`), `first`
    says whether this node carries them. Bytes in B, times in s, energies in J.
    """

    name: str
    weight_resident_bytes: float
    kv_resident_bytes: float
    weight_read_bytes: float
    kv_moved_bytes: float
    flops: float
    weight_read_s: dict[str, float]
    kv_read_s: dict[str, float]
    weight_tier_s: dict[str, float]
    kv_tier_s: dict[str, float]
    weight_compute_s: float
    context_compute_s: float
    weight_unit: str
    context_unit: str
    main_unit: str
    op_overhead_s: float
    op_collective_s: float
    op_collective_j: float
    collective_link: str  # "intra" or "a2e"
    first: bool
    weight_j: dict[str, float]
    kv_j: dict[str, float]
    compute_j: float

    @property
    def overhead_s(self) -> float:
        """The op's overhead if this node carries it."""
        return self.op_overhead_s if self.first else 0.0

    @property
    def collective_s(self) -> float:
        return self.op_collective_s if self.first else 0.0

    @property
    def collective_j(self) -> float:
        return self.op_collective_j if self.first else 0.0

    def weight_phase_s(self, w: Mapping[str, float]) -> float:
        return max([self.weight_compute_s] + [w.get(t, 0.0) * s for t, s in self.weight_read_s.items()])

    def context_phase_s(self, k: Mapping[str, float]) -> float:
        return max([self.context_compute_s] + [k.get(t, 0.0) * s for t, s in self.kv_read_s.items()])

    def energy_j(self, w: Mapping[str, float], k: Mapping[str, float]) -> dict[str, float]:
        """Dynamic joules for one micro-batch, by category (weights, kv, compute, links), the collective
        included when this node carries it."""
        return {
            "weights": sum(w.get(t, 0.0) * j for t, j in self.weight_j.items()),
            "kv": sum(k.get(t, 0.0) * j for t, j in self.kv_j.items()),
            "compute": self.compute_j,
            "links": self.collective_j,
        }


def _collective(node: Mapping, hw: Hardware, b: float) -> tuple[float, float, str]:
    """(seconds, joules, link) of a node's collective inside a group of hw.chips_per_group chips."""
    chips = hw.chips_per_group
    kind, per_token = node["collective"], node["collective_bytes_per_token"]
    if chips == 1 or not kind or not per_token:
        return 0.0, 0.0, "intra"
    link: Link | None = hw.intra_link
    name = "intra"
    if kind == "moe" and hw.moe_dispatch == "all-to-all":
        # each chip owns b/c of the tokens; each token's activation goes to the chips of its k experts
        # ((c-1)/c of them elsewhere) and their outputs come back (combine): per chip and direction
        link, name = (hw.a2e_link, "a2e") if hw.a2e_link is not None else (hw.intra_link, "intra")
        moved_per_chip = 2.0 * (b / chips) * node["experts_per_tok"] * (chips - 1) / chips * per_token
        total_bits = chips * moved_per_chip * BITS_PER_BYTE
    elif kind == "gather":  # one chip receives the other (c-1) shards' candidates
        moved_per_chip = (chips - 1) * b * per_token
        total_bits = moved_per_chip * BITS_PER_BYTE
    else:  # ring all-reduce (attention out, FFN, embedding, MoE tensor-parallel)
        moved_per_chip = 2.0 * (chips - 1) / chips * b * per_token
        total_bits = chips * moved_per_chip * BITS_PER_BYTE
    if link is None:
        return 0.0, 0.0, name
    seconds = moved_per_chip / (link.bw_bytes_per_s * hw.achievable.link_bandwidth) + link.latency_s
    return seconds, total_bits * link.pj_per_bit * PJ, name


def node_cost(
    name: str, node: Mapping, hw: Hardware, micro_batch: float, users: float, context: int
) -> NodeCost:
    """Cost of `node` (graph attributes) for a micro-batch of `micro_batch` users at `context` tokens.

    `users` is every user whose KV the group keeps resident (all micro-batches, not one).
    Uses hw.achievable for rates (hw.at_peak() for the speed of light).
    """
    b, chips, a = micro_batch, hw.chips_per_group, hw.achievable
    tokens = kv_tokens(node, context)
    kv_bytes_per_user = node["kv_bytes_per_token"] * tokens
    weight_read = weight_read_bytes(node, b)
    kv_moved = b * (kv_bytes_per_user + node["kv_bytes_per_token"])  # read the cache, write one token
    weight_flops = b * node["flops_per_token"]
    context_flops = b * tokens * node["attn_flops_per_ctx_token"]
    dtype = node["compute_dtype"]
    weight_rate = hw.flops_per_s(dtype, "weights") * chips * a.compute
    context_rate = hw.flops_per_s(dtype, "context") * chips * a.compute
    cap = None
    if a.attention_bytes_per_s_per_work_item and node["attention_work_items"]:
        # too few (user x head) work items leave compute units idle and cap the pull rate
        cap = b * node["attention_work_items"] * a.attention_bytes_per_s_per_work_item

    def kv_time(bw: float, capped: bool) -> float:
        if not kv_moved:
            return 0.0
        rate = bw * chips * a.kv_bandwidth
        return kv_moved / (min(rate, cap) if capped and cap is not None else rate)

    weight_s = {t.name: weight_read / (t.bw_bytes_per_s * chips * a.weight_bandwidth) for t in hw.tiers}
    coll_s, coll_j, link = _collective(node, hw, b)
    has_weights = bool(node["weight_bytes"]) or bool(node["flops_per_token"])
    weight_unit, context_unit = hw.unit_for("weights").name, hw.unit_for("context").name
    return NodeCost(
        name=name,
        weight_resident_bytes=node["weight_bytes"],
        kv_resident_bytes=users * kv_bytes_per_user,
        weight_read_bytes=weight_read,
        kv_moved_bytes=kv_moved,
        flops=weight_flops + context_flops,
        weight_read_s=weight_s,
        kv_read_s={t.name: kv_time(t.bw_bytes_per_s, True) for t in hw.tiers},
        weight_tier_s=dict(weight_s),
        kv_tier_s={t.name: kv_time(t.bw_bytes_per_s, False) for t in hw.tiers},
        weight_compute_s=weight_flops / weight_rate,
        context_compute_s=context_flops / context_rate,
        weight_unit=weight_unit,
        context_unit=context_unit,
        main_unit=weight_unit if has_weights else context_unit,
        op_overhead_s=a.node_overhead_s,
        op_collective_s=coll_s,
        op_collective_j=coll_j,
        collective_link=link,
        first=bool(node["first"]),
        weight_j={t.name: weight_read * BITS_PER_BYTE * t.pj_per_bit * PJ for t in hw.tiers},
        kv_j={
            t.name: kv_moved * BITS_PER_BYTE * (t.pj_per_bit + hw.kv_path_pj_per_bit) * PJ for t in hw.tiers
        },
        compute_j=(weight_flops * hw.pj_per_flop_of("weights") + context_flops * hw.pj_per_flop_of("context"))
        * PJ,
    )


@dataclass(frozen=True)
class BoundaryCost:
    """Sending one micro-batch's activations from one group to the next."""

    send_s: float
    link_j: float
    latency_s: float


def boundary_cost(activation_bytes_per_token: float, hw: Hardware, micro_batch: float) -> BoundaryCost:
    """Inter-group hop: bytes / (link bandwidth x fraction) of time, bits x pJ/bit of energy, one latency."""
    sent = micro_batch * activation_bytes_per_token
    link = hw.inter_link
    return BoundaryCost(
        send_s=sent / (link.bw_bytes_per_s * hw.achievable.link_bandwidth),
        link_j=sent * BITS_PER_BYTE * link.pj_per_bit * PJ,
        latency_s=link.latency_s,
    )


TOKEN_ID_BYTES = 4.0  # the sampled token of each user, returned from the last group to the first
