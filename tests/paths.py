"""Where things are in the checkout, defined once for every test and benchmark."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent       # the repository
TESTS = ROOT / "tests"
DATA = TESTS / "data"
MODELS = ROOT / "models"
EXAMPLES = ROOT / "examples"
KENYON = MODELS / "kenyon_cell.chan"
SQUID = MODELS / "hh_squid.chan"
SEED_EXAMPLE = EXAMPLES / "kenyon_50k_50s.toml"
