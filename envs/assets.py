"""Where the ManiSkill2_real2sim assets live, and `selfflow-robot assets fetch` to download them.

Resolution order for the asset root (a folder laid out like the simpler-env/ManiSkill2_real2sim
repository: `data/...` and `mani_skill2_real2sim/assets/descriptions/...`):

1. an explicit path (a config key `assets=` / the `asset_root` argument);
2. the environment variable `SELFFLOW_ROBOT_ASSETS`;
3. the download cache filled by `selfflow-robot assets fetch`
   (`$XDG_CACHE_HOME/selfflow-robot/ManiSkill2_real2sim-<commit>`, default `~/.cache/...`).

Anything missing raises `AssetsMissingError` with the fix. Downloads come from raw GitHub at a
pinned commit and are checked against the sha256 manifest shipped in the package.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import re
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from selfflow_robot.config import structured
from selfflow_robot.envs.asset_manifest import COMMIT, FILES, VARIANT_AGG_EXTRA_FILES
from selfflow_robot.envs.grid import SceneVariant
from selfflow_robot.errors import ConfigError, UserError

ENV_VAR = "SELFFLOW_ROBOT_ASSETS"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/simpler-env/ManiSkill2_real2sim/{COMMIT}"
# Files whose presence marks a usable asset root (checked on every resolve; cheap).
KEY_FILES = (
    "data/custom/mk_station_recolor.urdf",
    "data/custom/info_pick_custom_baked_tex_v1.json",
    "data/real_inpainting/open_drawer_a0.png",
    "mani_skill2_real2sim/assets/descriptions/googlerobot_description/"
    "google_robot_meta_sim_fix_wheel_fix_fingertip.urdf",
)


class AssetsMissingError(UserError, FileNotFoundError):
    """The simulation assets are not where they were looked for."""


class AssetChecksumError(UserError):
    """Downloaded files do not match the shipped sha256 manifest."""


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/selfflow-robot` (default `~/.cache/selfflow-robot`)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "selfflow-robot"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder `assets fetch` fills for the pinned commit."""
    return Path(cache_dir or default_cache_dir()) / f"ManiSkill2_real2sim-{COMMIT[:12]}"


def _missing(root: Path) -> list[str]:
    return [f for f in KEY_FILES if not (root / f).is_file()]


def resolve_asset_root(asset_root: str | os.PathLike | None = None) -> Path:
    """Return the asset root to use, or raise `AssetsMissingError` saying what was tried and the fix."""
    tried: list[str] = []
    candidates: list[tuple[str, Path]] = []
    if asset_root:
        candidates.append(("given path", Path(asset_root)))
    elif os.environ.get(ENV_VAR):
        candidates.append((f"${ENV_VAR}", Path(os.environ[ENV_VAR])))
    else:
        candidates.append(("download cache", cache_root()))
    for source, root in candidates:
        root = root.expanduser().resolve()
        missing = _missing(root)
        if not missing:
            return root
        tried.append(f"{source} {root} (missing {missing[0]})")
    raise AssetsMissingError(
        "ManiSkill2_real2sim assets not found: " + "; ".join(tried) + ". Fix: run `selfflow-robot assets fetch` "
        f"(downloads ~57 MB from GitHub at commit {COMMIT[:12]}), or point {ENV_VAR} (or `assets=`) at an "
        "existing copy of simpler-env/ManiSkill2_real2sim, e.g. "
        f"`export {ENV_VAR}=../shared/assets/ManiSkill2_real2sim`.")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class FetchReport:
    """What `fetch_assets` did."""

    root: Path
    downloaded: int
    already_present: int
    bytes_downloaded: int


def _fetch_one(rel: str, expected: tuple[str, int], dest_root: Path, base_url: str,
               timeout_s: float) -> tuple[int, str | None]:
    """Download one file to a temp name, verify against (sha256, size), rename into place.

    Returns (bytes, error or None)."""
    sha, size = expected
    dest = dest_root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{urllib.request.quote(rel)}"
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        h = hashlib.sha256()
        n = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
                h.update(chunk)
                n += len(chunk)
        if h.hexdigest() != sha or n != size:
            os.unlink(tmp)
            return n, f"{rel}: sha256 {h.hexdigest()[:12]}.. ({n} B), expected {sha[:12]}.. ({size} B)"
        os.replace(tmp, dest)
        return n, None
    except OSError as e:  # URLError/HTTPError are OSErrors
        if os.path.exists(tmp):
            os.unlink(tmp)
        return 0, f"{rel}: {e}"


def fetch_assets(cache_dir: str | os.PathLike | None = None, base_url: str = DEFAULT_BASE_URL,
                 workers: int = 8, timeout_s: float = 60.0, progress: bool = True,
                 files: Mapping[str, tuple[str, int]] | None = None) -> FetchReport:
    """Download every manifest file missing or wrong in the cache, verify sha256, return a report.

    `files` maps relative paths to (sha256, size); default: the visual-matching files (`FILES`) plus
    the variant-aggregation extras (`VARIANT_AGG_EXTRA_FILES`). Files already present with the right
    checksum are kept. A file that fails verification is never left in place; `AssetChecksumError`
    lists every bad or unreachable file at the end.
    """
    wanted = dict(files) if files is not None else {**FILES, **VARIANT_AGG_EXTRA_FILES}
    root = cache_root(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    todo = [rel for rel, (sha, size) in wanted.items()
            if not ((root / rel).is_file() and (root / rel).stat().st_size == size and sha256_file(root / rel) == sha)]
    errors: list[str] = []
    nbytes = 0
    with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            tqdm(total=sum(wanted[r][1] for r in todo), unit="B", unit_scale=True, disable=not progress,
                 desc="assets") as bar:
        futures = {pool.submit(_fetch_one, rel, wanted[rel], root, base_url, timeout_s): rel for rel in todo}
        for fut in cf.as_completed(futures):
            n, err = fut.result()
            nbytes += n
            bar.update(wanted[futures[fut]][1])
            if err:
                errors.append(err)
    if errors:
        raise AssetChecksumError(
            f"{len(errors)} of {len(todo)} asset files failed from {base_url} (nothing bad was kept in {root}): "
            + "; ".join(sorted(errors)[:5]) + ("; ..." if len(errors) > 5 else "")
            + ". Fix: re-run `selfflow-robot assets fetch` (it resumes), or check the network / `base_url=`.")
    return FetchReport(root, len(todo), len(wanted) - len(todo), nbytes)


# ---- the files of a drawer variant-aggregation scene variant (envs/drawer_variant_scene.py loads them)

def stage_path(asset_root: Path, variant: SceneVariant) -> Path:
    """The stage mesh of a variant."""
    return asset_root / "data" / "hab2_bench_assets" / "stages" / f"{variant.scene_name}.glb"


def station_path(asset_root: Path, variant: SceneVariant) -> Path:
    """The cabinet URDF of a variant."""
    return asset_root / "data" / "custom" / f"{variant.station_name}.urdf"


def variant_files(asset_root: Path, variant: SceneVariant) -> list[Path]:
    """Every file the variant's scene loads: stage, cabinet URDF and the meshes that URDF names."""
    urdf = station_path(asset_root, variant)
    files = [stage_path(asset_root, variant), urdf]
    if urdf.is_file():
        files += [urdf.parent / m for m in re.findall(r'filename="([^"]+)"', urdf.read_text())]
    return files


def missing_variant_files(asset_root: Path, variant: SceneVariant) -> list[str]:
    """Files of `variant_files` absent under `asset_root`, relative to it (empty when the variant can be built)."""
    root = Path(asset_root)
    return [str(p.relative_to(root)) for p in variant_files(root, variant) if not p.is_file()]


def check_variant_assets(asset_root: Path, variant: SceneVariant) -> None:
    """Raise `AssetsMissingError` naming the missing files of `variant` and the fix."""
    missing = missing_variant_files(asset_root, variant)
    if missing:
        raise AssetsMissingError(
            f"variant {variant.name!r} needs {', '.join(missing)}, missing under {asset_root}. Fix: run "
            "`selfflow-robot assets fetch` and use its cache (or a full clone of simpler-env/ManiSkill2_real2sim), or "
            "leave the variant out (eval: `variants=[...]` without it)")


@dataclass
class AssetsFetchConfig:
    """`selfflow-robot assets fetch` options."""

    cache_dir: str | None = None          # default $XDG_CACHE_HOME/selfflow-robot
    base_url: str = DEFAULT_BASE_URL      # raw files at the pinned commit
    workers: int = 8                      # parallel downloads
    timeout_s: float = 60.0               # per request

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")


def main(cfg) -> int:
    """CLI: download and verify the assets; prints the export line for `SELFFLOW_ROBOT_ASSETS`."""
    c = structured(AssetsFetchConfig, cfg)
    rep = fetch_assets(c.cache_dir, c.base_url, c.workers, c.timeout_s)
    print(f"assets ready in {rep.root} ({rep.downloaded} downloaded, {rep.already_present} already verified, "
          f"{rep.bytes_downloaded / 1e6:.1f} MB)")
    if c.cache_dir is not None:
        print(f"export {ENV_VAR}={rep.root}")
    return 0
