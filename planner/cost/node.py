"""The one cost model: what a decode step of one node costs on one chip group (FORMULATION.md §2).

Everything that prints a time or an energy (speed of light, the MILP, the plan evaluator, calibration)
calls `node_cost`, `boundary_cost` and `pipeline_cost` here; there is no second copy of these formulas.

Time model of a group (stated once, used everywhere):
- nodes on a group run one after another, as kernels do; a node has a *weight phase* (read its weights,
  do its matmuls) and a *context phase* (read the KV cache, attend over it); inside a phase the tiers and
  the compute overlap (a roofline per phase): phase time = max(bytes_t / rate_t for each tier t,
  FLOPs / compute rate);
- each node adds a fixed overhead (kernel launch, calibrated) and, with more than one chip in the group,
  a ring all-reduce of its output (bytes over the intra-group link plus one synchronization latency);
- sending the activations to the next group overlaps with the next micro-batch (a separate resource);
- a user's token passes all S stages: token time = S * cycle + (S - 1) * inter-group latency.
Energy: bits moved per tier x (device + chip data-path pJ/bit), plus the chip's KV data-path pJ/bit on KV
bits only, FLOPs x pJ/FLOP, link bits x link pJ/bit, and the chips' static power over the time a token
takes, shared by the users in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from planner.hardware.catalog import Hardware
from planner.model.graph import kv_tokens

PJ = 1e-12
BITS_PER_BYTE = 8.0
CATEGORIES = ("weights", "kv", "compute", "links", "idle")


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
    tier t; a split w[t] (fractions summing to 1) scales them. Bytes in B, times in s, energies in J.
    """

    name: str
    weight_resident_bytes: float
    kv_resident_bytes: float
    weight_read_bytes: float
    kv_moved_bytes: float
    flops: float
    weight_read_s: dict[str, float]
    kv_read_s: dict[str, float]
    weight_compute_s: float
    context_compute_s: float
    overhead_s: float
    collective_s: float
    weight_j: dict[str, float]
    kv_j: dict[str, float]
    compute_j: float
    collective_j: float

    def weight_phase_s(self, w: Mapping[str, float]) -> float:
        return max([self.weight_compute_s] + [w.get(t, 0.0) * s for t, s in self.weight_read_s.items()])

    def context_phase_s(self, k: Mapping[str, float]) -> float:
        return max([self.context_compute_s] + [k.get(t, 0.0) * s for t, s in self.kv_read_s.items()])

    def time_s(self, w: Mapping[str, float], k: Mapping[str, float]) -> float:
        """Seconds this node occupies its group for one micro-batch."""
        return self.weight_phase_s(w) + self.context_phase_s(k) + self.overhead_s + self.collective_s

    def energy_j(self, w: Mapping[str, float], k: Mapping[str, float]) -> dict[str, float]:
        """Dynamic joules for one micro-batch, by category (weights, kv, compute, links)."""
        return {
            "weights": sum(w.get(t, 0.0) * j for t, j in self.weight_j.items()),
            "kv": sum(k.get(t, 0.0) * j for t, j in self.kv_j.items()),
            "compute": self.compute_j,
            "links": self.collective_j,
        }


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
    compute_rate = hw.flops_per_s(node["compute_dtype"]) * chips * a.compute

    def kv_rate(bw: float) -> float:
        rate = bw * chips * a.kv_bandwidth
        if a.attention_bytes_per_s_per_work_item and node["attention_work_items"]:
            # too few (user x head) work items leave compute units idle and cap the pull rate
            rate = min(rate, b * node["attention_work_items"] * a.attention_bytes_per_s_per_work_item)
        return rate

    collective_s = collective_j = 0.0
    if chips > 1 and hw.intra_link is not None and node["allreduce_bytes_per_token"]:
        per_chip = 2.0 * (chips - 1) / chips * b * node["allreduce_bytes_per_token"]  # ring all-reduce
        collective_s = per_chip / (hw.intra_link.bw_bytes_per_s * a.link_bandwidth) + hw.intra_link.latency_s
        collective_j = chips * per_chip * BITS_PER_BYTE * hw.intra_link.pj_per_bit * PJ
    return NodeCost(
        name=name,
        weight_resident_bytes=node["weight_bytes"],
        kv_resident_bytes=users * kv_bytes_per_user,
        weight_read_bytes=weight_read,
        kv_moved_bytes=kv_moved,
        flops=weight_flops + context_flops,
        weight_read_s={
            t.name: weight_read / (t.bw_bytes_per_s * chips * a.weight_bandwidth) for t in hw.tiers
        },
        kv_read_s={t.name: (kv_moved / kv_rate(t.bw_bytes_per_s) if kv_moved else 0.0) for t in hw.tiers},
        weight_compute_s=weight_flops / compute_rate,
        context_compute_s=context_flops / compute_rate,
        overhead_s=a.node_overhead_s,
        collective_s=collective_s,
        weight_j={t.name: weight_read * BITS_PER_BYTE * t.pj_per_bit * PJ for t in hw.tiers},
        kv_j={
            t.name: kv_moved * BITS_PER_BYTE * (t.pj_per_bit + hw.kv_path_pj_per_bit) * PJ for t in hw.tiers
        },
        compute_j=(weight_flops + context_flops) * hw.pj_per_flop * PJ,
        collective_j=collective_j,
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
