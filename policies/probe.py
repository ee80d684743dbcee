"""Which inputs does a policy act on? Swap one input of a demo frame for another task's and measure the change.

For two instructions A and B (say "close top drawer" and "open top drawer"), the k-th demo of A is paired with
the k-th demo of B (collected demos of a grid task share the robot pose at the same index). At each probed
step t the policy predicts A's chunk from A's frames, instruction and state; then again with one input taken
from B: its frames (`image`), its instruction (`text`) or its robot state (`state`). The mean absolute change
of the predicted translation (metres, over the chunk) says how much the policy listens to that input. The
demos' own change at the same steps (`demo`: B's recorded actions against A's, so it includes the demos'
noise) is the scale a task-aware policy should reach.

    result = probe_conditioning(policy, episodes_a, episodes_b, steps=(0, 3, 6))
    print(result.to_markdown())
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from selfflow_robot.data.frames import decode_frames
from selfflow_robot.data.reader import Episode, RLDSReader
from selfflow_robot.errors import ConfigError, DataError

INPUTS = ("image", "text", "state")


@dataclass
class ProbeResult:
    """Mean |Δ translation| (m) of the predicted chunk when one input of A's frame is swapped for B's."""

    instructions: tuple[str, str]
    pairs: int
    steps: list[int]
    swap: dict[str, float]                 # input -> mean |Δ xyz| over pairs, steps and the chunk
    demo: float                            # the demos' own mean |a_B - a_A| at the same steps
    per_step: dict[str, list[float]] = field(default_factory=dict)   # input -> one value per probed step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        a, b = self.instructions
        head = "| swapped for B's | " + " | ".join(f"t={t}" for t in self.steps) + " | mean | share of demo gap |"
        rows = [f"A = '{a}', B = '{b}': {self.pairs} episode pairs; mean |Δ translation| of the predicted chunk "
                "(mm)", "", head, "|---" * (len(self.steps) + 3) + "|"]
        for name in [*self.swap, "demo"]:
            vals = self.per_step[name]
            mean = self.demo if name == "demo" else self.swap[name]
            label = "(demos: B's actions)" if name == "demo" else name
            share = f"{mean / self.demo:.0%}" if self.demo > 0 else "-"
            cells = " | ".join(f"{1000 * v:.1f}" for v in vals)
            rows.append(f"| {label} | {cells} | {1000 * mean:.1f} | {share} |")
        return "\n".join(rows)


def episodes_by_instruction(reader: RLDSReader, instructions: Sequence[str], limit: int) -> list[list[Episode]]:
    """The first `limit` episodes of each instruction, in episode order; a clear error for one that is absent.

    Reads episodes in order and stops once every instruction has `limit` (a progress bar on large datasets)."""
    found: dict[str, list[Episode]] = {s: [] for s in instructions}
    seen: set[str] = set()
    ids = reader.episode_ids
    for i in tqdm(ids, desc="finding episodes", unit="ep", leave=False, disable=len(ids) < 1000):
        ep = reader.read(i)
        if ep is None:
            continue
        seen.add(ep.instruction)
        if ep.instruction in found and len(found[ep.instruction]) < limit:
            found[ep.instruction].append(ep)
            if all(len(v) >= limit for v in found.values()):
                break
    for s, eps in found.items():
        if not eps:
            raise DataError(f"no episode with the instruction {s!r} in the dataset; it has: {sorted(seen)}")
    return [found[s] for s in instructions]


def probe_conditioning(policy: Any, episodes_a: Sequence[Episode], episodes_b: Sequence[Episode],
                       steps: Sequence[int] = (0, 3, 6)) -> ProbeResult:
    """Swap each input of A's frames for B's (see the module docstring). `policy`: a `SelfFlowPolicy`.

    The policy is reset before every prediction, so every call starts from the same sampler noise and the
    change comes from the swapped input alone. `state` is probed only for state-conditioned checkpoints.
    """
    pairs = min(len(episodes_a), len(episodes_b))
    if pairs == 0:
        raise ConfigError("probe: need at least one episode of each instruction")
    a_text, b_text = episodes_a[0].instruction, episodes_b[0].instruction
    shortest = min(len(ep) for ep in [*episodes_a[:pairs], *episodes_b[:pairs]])
    bad = [t for t in steps if not 0 <= t < shortest]
    if bad:
        raise ConfigError(f"probe: steps {bad} are outside the shortest probed episode ({shortest} steps)")
    meta = policy.metadata
    k, horizon, use_state = int(meta["context_frames"]), int(meta["chunk_length"]), bool(meta.get("state_dim"))
    inputs = [n for n in INPUTS if n != "state" or use_state]

    def predict(frames: np.ndarray, text: str, state: np.ndarray | None) -> np.ndarray:
        policy.reset(text)
        obs = {"image": frames, "instruction": text, **({"state": state} if use_state else {})}
        return policy.infer(obs)["actions"][:, :3]

    # each episode's actions and states, concatenated once (not per probed step)
    eps = [(ep_a, ep_b, ep_a.actions(), ep_b.actions(), ep_a.state() if use_state else None,
            ep_b.state() if use_state else None) for ep_a, ep_b in zip(episodes_a[:pairs], episodes_b[:pairs])]
    per_step: dict[str, list[float]] = {n: [] for n in [*inputs, "demo"]}
    for t in steps:
        deltas: dict[str, list[float]] = {n: [] for n in per_step}
        for ep_a, ep_b, act_a, act_b, st_a, st_b in eps:
            # the frames up to t (at most k): the policy pads a short history by repeating its first frame
            fa, fb = (decode_frames(ep.images[max(t - k + 1, 0):t + 1]) for ep in (ep_a, ep_b))
            sa = st_a[t] if use_state else None
            sb = st_b[t] if use_state else None
            base = predict(fa, a_text, sa)
            swapped = {"image": (fb, a_text, sa), "text": (fa, b_text, sa), "state": (fa, a_text, sb)}
            for n in inputs:
                deltas[n].append(float(np.abs(predict(*swapped[n]) - base).mean()))
            n_demo = min(horizon, len(ep_a) - t, len(ep_b) - t)
            deltas["demo"].append(float(np.abs(act_b[t:t + n_demo, :3] - act_a[t:t + n_demo, :3]).mean()))
        for n, v in deltas.items():
            per_step[n].append(float(np.mean(v)))
    swap = {n: float(np.mean(per_step[n])) for n in inputs}
    return ProbeResult((a_text, b_text), pairs, list(steps), swap, float(np.mean(per_step["demo"])), per_step)
