"""Sub-layer placement: splitting graph nodes into parts that consecutive chip groups can hold.

A whole node (planner.model.graph) is split along the axis real servers split it:
- embed, lm_head: by vocabulary rows (each part a shard of the table; the LM head's shards report their
  local top-k candidates, gathered by the collective of the first part in each group);
- attention: into its input projections (`qkv`, by output columns), its core over the KV cache (`core`,
  by KV heads where the parts divide the model's KV heads, else by users: MLA's compressed latent is
  shared by all heads, so only users separate it) and its output projection (`o`, row-parallel, by input
  rows). The core holds the KV of its heads (or users) and none of the weights, so the KV of a layer
  can sit next to several groups' attention units;
- ffn: by intermediate columns (gate/up columns with the matching down rows; each part adds a partial
  sum);
- moe: by experts (the router, the shared experts and the norm stay in the first part).

Parts of a node are equal shares (a column or head count that does not divide is shared fractionally: an
approximation of at most one column per part). Per-token quantities are divided; what happens once per
node in a group (its fixed overhead, its collective) is carried by the first part, and the cost model
adds it again for a group whose slice starts inside a node (planner.cost.pipeline). Between parts of a
node the activations carried are the residual stream plus the partial results still in flight, stated
per edge below; the extra bytes are the price of the split.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import networkx as nx

from planner.model.graph import kv_tokens

KINDS = ("embed", "qkv", "core", "o", "ffn", "moe", "lm_head")
KV_PARTS_PER_GROUP = 10  # design choice: a core part holds at most 1/10 of a group's memory in KV
MAX_CORE_PARTS = 16  # design choice: at most 16 core parts per layer (solve time; see core_parts)


@dataclass(frozen=True)
class Granularity:
    """Parts each node kind is split into (1: whole). `qkv`, `core` and `o` are the three parts of an
    attention node; with all three 1 the attention stays one node."""

    embed: int = 1
    qkv: int = 1
    core: int = 1
    o: int = 1
    ffn: int = 1
    moe: int = 1
    lm_head: int = 1

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def whole(self) -> bool:
        return all(v == 1 for v in self.as_dict().values())

    @property
    def splits_attention(self) -> bool:
        return (self.qkv, self.core, self.o) != (1, 1, 1)


def _parts_for(size_bytes: float, part_bytes: float) -> int:
    return max(1, math.ceil(size_bytes / part_bytes - 1e-9)) if part_bytes > 0 else 1


def granularity_for_part_bytes(graph: nx.DiGraph, part_bytes: float, core_parts: int = 1) -> Granularity:
    """Parts such that no part of any node holds more than `part_bytes` of weights (the attention's
    projections counted separately), cores split `core_parts` ways."""
    most: dict[str, float] = dict.fromkeys(KINDS, 0.0)
    for _, d in graph.nodes(data=True):
        kind = d["kind"]
        if kind == "attn":
            per_param = d["weight_bytes"] / d["params"] if d["params"] else 0.0
            most["qkv"] = max(most["qkv"], d["qkv_params"] * per_param)
            most["o"] = max(most["o"], d["o_params"] * per_param)
        elif kind in most:
            most[kind] = max(most[kind], d["weight_bytes"])
    parts = {k: _parts_for(v, part_bytes) for k, v in most.items()}
    parts["core"] = max(1, core_parts)
    return Granularity(**parts)


MAX_REFINEMENTS = 16  # halvings of the part size tried to give a fixed S enough nodes (2^16 x finer)


def node_count(graph: nx.DiGraph, g: Granularity) -> int:
    """Nodes of `split_graph(graph, g)`, counted without building it."""
    count = 0
    for _, d in graph.nodes(data=True):
        if d["kind"] == "attn":
            count += g.qkv + g.core + g.o if g.splits_attention else 1
        else:
            count += getattr(g, d["kind"], 1)
    return count


def auto_granularity(
    graph: nx.DiGraph, fast_tier_bytes: float, group_bytes: float, max_groups: int, core: int,
    stages: int | None = None,
) -> Granularity:  # fmt: skip
    """The default split (design rule, stated in the plan): parts of at most half a group's fastest tier
    when all the weights fit in the fastest tiers of `max_groups` groups (so a part never blocks the fast
    tier), else of half a group's total capacity; each attention core in `core` parts (core_parts).

    With a fixed number of stages S (`stages`), every stage holds at least one node, so a split with
    fewer than S nodes could not be placed at all. The part size is then halved until the split has at
    least S nodes (design rule: finer weight parts, not more core parts, because the weights set most of
    a stage's time; at most MAX_REFINEMENTS halvings). A split the user gives is not refined: with fewer
    nodes than S the solve is infeasible and says so (planner.placement.explain)."""
    weights = sum(d["weight_bytes"] for _, d in graph.nodes(data=True))
    fits_fast = weights <= max_groups * fast_tier_bytes
    part_bytes = (fast_tier_bytes if fits_fast else group_bytes) / 2
    g = granularity_for_part_bytes(graph, part_bytes, core)
    for _ in range(MAX_REFINEMENTS if stages else 0):
        if node_count(graph, g) >= stages:
            break
        part_bytes /= 2
        g = granularity_for_part_bytes(graph, part_bytes, core)
    return g


def layer_kv_bytes(graph: nx.DiGraph, users: int, context: int) -> float:
    """The KV cache of the largest attention layer for `users` users at `context` tokens (bytes; sliding
    windows applied)."""
    return users * max(
        (d["kv_bytes_per_token"] * kv_tokens(d, context) for _, d in graph.nodes(data=True)), default=0.0
    )


def core_parts(layer_kv_bytes: float, group_bytes: float) -> int:
    """Parts each attention core is split into by default: ceil(KV_PARTS_PER_GROUP x layer KV / group
    capacity), at most MAX_CORE_PARTS, at least 1.

    Why (design rule): a part's KV sits in one group, so a group holds whole parts and may leave up to one
    part's worth of its memory (and of its KV bandwidth) unused. Parts of at most 1/KV_PARTS_PER_GROUP of
    a group's capacity keep that loss under 1/KV_PARTS_PER_GROUP of every group's memory; fewer users
    hold less KV per layer, so their cores stay whole or in few parts and the solve stays small (the
    shipped Llama-3.1-70B instance at 2,048 users: 3 parts). At the capacity bound of G groups sharing
    L layers (layer KV = G x capacity / L) the rule gives about 10 x G / L parts, so a group's KV share is
    about 10 parts. The cap binds above 1.6 groups' worth of KV per layer and trades packing for solve
    time: 560 one-chip groups of Llama-3.1-70B at their bound get 16 parts (about 2.3 per chip), a graph
    of about 2,600 nodes, the size of the placement core's 60 s scale target. Past the KV-head count the
    parts split by users (planner.model.split._attention_parts).

    The parts follow the users and the memory, so a search over either would probe different graphs and
    feasibility need not be monotone (finer parts can pack better). The capacity search therefore fixes
    the core parts for all its probes at its upper bound on the users (InstanceSpec.core_parts; the
    finest split it needs), and the memory-size search at its first guess of the capacity."""
    if group_bytes <= 0 or layer_kv_bytes <= 0:
        return 1
    wanted = math.ceil(KV_PARTS_PER_GROUP * layer_kv_bytes / group_bytes - 1e-9)
    return max(1, min(MAX_CORE_PARTS, wanted))


def _scaled(d: dict, share: float, keys: tuple[str, ...]) -> dict:
    return {k: d[k] * share for k in keys}


PER_TOKEN = ("params", "active_params", "weight_bytes", "flops_per_token", "lookup_bytes_per_token")


def _parts_of(name: str, d: dict, g: Granularity, act_bytes: float, hidden_bytes: float) -> list[tuple]:
    """[(part name, attrs, activation bytes of the edge to the next part)] for one node."""
    kind = d["kind"]
    if kind == "attn":
        if not g.splits_attention:
            return [(name, dict(d), None)]
        return _attention_parts(name, d, g, act_bytes, hidden_bytes)
    p = getattr(g, kind, 1)
    if p == 1:
        return [(name, dict(d), None)]
    base = dict(d, op=name, parts=p)
    if kind == "moe":
        return _moe_parts(name, base, p, hidden_bytes)
    inner = hidden_bytes * 2  # residual + partial sum (ffn); a partial vector (embed) fits in the same
    if kind == "lm_head":
        inner = hidden_bytes + d["collective_bytes_per_token"]  # residual + the running top-k
    out = []
    for j in range(p):
        part = dict(base, **_scaled(d, 1.0 / p, PER_TOKEN), part=j, first=j == 0)
        out.append((f"{name}#{j}", part, inner if j < p - 1 else None))
    return out


def _moe_parts(name: str, base: dict, p: int, hidden_bytes: float) -> list[tuple]:
    """Experts split p ways; the router, the shared experts and the norm stay in the first part."""
    shared, expert = base["shared_bytes"], base["expert_bytes"]
    per_param = base["weight_bytes"] / base["params"]
    expert_params = expert / per_param
    routed_flops = 2.0 * base["experts_per_tok"] * expert_params
    out = []
    for j in range(p):
        first = j == 0
        keep = shared if first else 0.0
        e, k = base["experts"] / p, base["experts_per_tok"] / p
        part = base | dict(
            experts=e,
            experts_per_tok=k,
            shared_bytes=keep,
            weight_bytes=keep + e * expert,
            params=keep / per_param + e * expert_params,
            active_params=keep / per_param + k * expert_params,
            flops_per_token=(base["flops_per_token"] - routed_flops if first else 0.0) + routed_flops / p,
            part=j,
            first=first,
        )
        out.append((f"{name}#{j}", part, 2 * hidden_bytes if j < p - 1 else None))
    return out


def _attention_parts(name: str, d: dict, g: Granularity, act: float, hidden_bytes: float) -> list[tuple]:
    per_param = d["weight_bytes"] / d["params"]
    hidden = hidden_bytes / act  # hidden size in values
    qkv_out, attn_out = d["qkv_out_values"], d["attn_out_values"]
    layer_op = name.rsplit(".", 1)[0]
    common = {
        k: d[k]
        for k in ("layer", "order", "compute_dtype", "kv_window_tokens", "heads", "kv_heads", "split_by")
    }
    blank = {
        "kv_bytes_per_token": 0.0,
        "attn_flops_per_ctx_token": 0.0,
        "attention_work_items": 0.0,
        "collective": "",
        "collective_bytes_per_token": 0.0,
        "experts": 0.0,
        "experts_per_tok": 0.0,
        "expert_bytes": 0.0,
        "shared_bytes": 0.0,
        "lookup_bytes_per_token": 0.0,
    }
    out = []
    for j in range(g.qkv):
        params = d["qkv_params"] / g.qkv
        part = (
            common
            | blank
            | dict(
                kind="qkv",
                op=f"{layer_op}.qkv",
                part=j,
                parts=g.qkv,
                first=j == 0,
                params=params,
                active_params=params,
                weight_bytes=params * per_param,
                flops_per_token=d["qkv_flops_per_token"] / g.qkv,
            )
        )
        out.append((part["op"] if g.qkv == 1 else f"{part['op']}#{j}", part, (hidden + qkv_out) * act))
    by = "heads" if d["split_by"] == "heads" and d["kv_heads"] % g.core == 0 else "users"
    for j in range(g.core):
        part = (
            common
            | blank
            | dict(
                kind="core",
                op=f"{layer_op}.core",
                part=j,
                parts=g.core,
                first=j == 0,
                split_by=by,
                params=0.0,
                active_params=0.0,
                weight_bytes=0.0,
                flops_per_token=0.0,
                kv_bytes_per_token=d["kv_bytes_per_token"] / g.core,
                attn_flops_per_ctx_token=d["attn_flops_per_ctx_token"] / g.core,
                attention_work_items=d["attention_work_items"] / g.core,
            )
        )
        last = j == g.core - 1
        carry = (hidden + attn_out) if last else (hidden + qkv_out + attn_out)
        out.append((part["op"] if g.core == 1 else f"{part['op']}#{j}", part, carry * act))
    for j in range(g.o):
        params = d["o_params"] / g.o
        part = (
            common
            | blank
            | dict(
                kind="o",
                op=f"{layer_op}.o",
                part=j,
                parts=g.o,
                first=j == 0,
                params=params,
                active_params=params,
                weight_bytes=params * per_param,
                flops_per_token=2.0 * params,
                collective=d["collective"],
                collective_bytes_per_token=d["collective_bytes_per_token"],
            )
        )
        carry = (2 * hidden + attn_out) * act if j < g.o - 1 else None
        out.append((part["op"] if g.o == 1 else f"{part['op']}#{j}", part, carry))
    return out


def _chain_graph(graph: nx.DiGraph, parts_of, **attrs) -> nx.DiGraph:
    """A new chain with every node of `graph` replaced by `parts_of(i, name)`, a list of (part name, its
    attributes, activation bytes of the edge to the next part); from a node's last part on, the edge is
    the node's own outgoing edge. `attrs` are added to the graph's attributes."""
    nodes = list(graph.nodes)
    out = nx.DiGraph(**{**graph.graph, **attrs})
    previous, carried = None, None
    for i, name in enumerate(nodes):
        for part_name, part_attrs, inner in parts_of(i, name):
            out.add_node(part_name, **{**part_attrs, "order": out.number_of_nodes()})
            if previous is not None:
                out.add_edge(previous, part_name, activation_bytes=float(carried))
            previous, carried = part_name, inner
        if i < len(nodes) - 1:
            carried = graph.edges[name, nodes[i + 1]]["activation_bytes"]
    return out


def split_graph(graph: nx.DiGraph, g: Granularity) -> nx.DiGraph:
    """The graph with every node split into its parts (in execution order), edges carrying activations.

    Returns `graph` itself when nothing splits. Totals are kept: the parts of a node sum to its
    parameters, weight bytes, FLOPs, KV bytes and lookups (tests check it)."""
    if g.whole:
        return graph
    act = graph.graph["activation_value_bytes"]
    hidden_bytes = graph.graph["hidden_size"] * act
    return _chain_graph(
        graph,
        lambda _, name: _parts_of(name, graph.nodes[name], g, act, hidden_bytes),
        granularity=g.as_dict(),
    )


CUT_STEPS = 64  # a core part is cut between two groups at a multiple of 1/64 of its users (design choice)
CORE_PER_USER = ("kv_bytes_per_token", "attn_flops_per_ctx_token", "attention_work_items")


def cuttable(graph: nx.DiGraph, name: str) -> bool:
    """A node a group boundary may cut by users (planner.placement.packing): a part of an attention core
    split into two or more parts (so the activations carried across the cut are those carried between
    two of its parts)."""
    d = graph.nodes[name]
    return d["kind"] == "core" and d.get("parts", 1) >= 2


def between_parts_edge(node: dict, i: int) -> int:
    """For core part `node` at position i of a split chain: the position k of an edge k -> k + 1 between
    two parts of its core (after it, or before it for the last part): what a cut inside it carries."""
    return i if node["part"] < node["parts"] - 1 else i - 1


def cut_graph(graph: nx.DiGraph, cuts: dict[str, float]) -> nx.DiGraph:
    """`graph` with each core part named in `cuts` replaced by two pieces: the first `share` of its users
    (`name:a`, keeping the part's place as the op's first part or not) and the rest (`name:b`).

    Why (planner.placement.packing): a group's memory holds whole nodes, so a core's users can only be
    shared between neighbouring groups at the parts' boundaries; a cut lets the boundary fall anywhere in
    a part, as the packing found it. A piece's KV bytes, attention FLOPs and work items are its share of
    the part's; the edge between the two pieces carries what the edge between two parts of the core
    carries (the residual, the queries and the partial outputs). Totals are kept (tests check it)."""
    if not cuts:
        return graph
    nodes = list(graph.nodes)

    def pieces(i: int, name: str) -> list[tuple]:
        d = graph.nodes[name]
        if name not in cuts:
            return [(name, dict(d), None)]
        share, k = cuts[name], between_parts_edge(d, i)
        within = graph.edges[nodes[k], nodes[k + 1]]["activation_bytes"]
        return [
            (f"{name}:{tag}", dict(d, **_scaled(d, s, CORE_PER_USER), first=first, users_share=s), inner)
            for tag, s, first, inner in (("a", share, d["first"], within), ("b", 1.0 - share, 0, None))
        ]

    return _chain_graph(graph, pieces, core_cuts=len(cuts))
