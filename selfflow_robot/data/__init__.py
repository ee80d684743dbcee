"""RT-1 data: schema, TF-free RLDS reader, windows, sharded resumable dataset, statistics, synthetic
writer and converters. See docs/data.md.

Typical use (training):

    from selfflow_robot.data.dataset import RT1Windows, make_loader
    from selfflow_robot.data.windows import WindowConfig
    from selfflow_robot.data.statistics import load_or_compute_statistics, ActionNormalizer

    ds = RT1Windows("data/synth", WindowConfig(context_frames=2, horizon=4, height=64), split="train")
    loader = make_loader(ds, batch_size=8, num_workers=2)       # loader.state_dict() resumes exactly
    stats, language_table = load_or_compute_statistics(ds.reader)
    tokens = ActionNormalizer(stats).normalize(batch["actions"], batch["terminate"])  # (B, H, 8)
"""
