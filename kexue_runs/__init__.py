"""kexue-runs: reproduce the claims of Scientific Spaces (kexue.fm) posts by running them."""

from pathlib import Path

__version__ = "0.1.0"


def config_dir() -> Path:
    """The configs/ folder: $KEXUE_CONFIG_DIR if set, else beside the package in a checkout or editable
    install, else inside it in a wheel."""
    import os

    if os.environ.get("KEXUE_CONFIG_DIR"):
        return Path(os.environ["KEXUE_CONFIG_DIR"]).resolve()
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "configs", here / "configs"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"kexue-runs configs not found beside or inside {here}")
