"""``emulator cache``: where the CAMB table cache is, how big it is, and emptying it.

The cache (:mod:`emulator.core.camb_cache`) keeps CAMB's linear and halofit tables per cosmology so that a
cosmology's CAMB run happens once per machine. Its folder is ``$COSMO_EMULATOR_CACHE`` (``off`` disables it),
else ``$XDG_CACHE_HOME/cosmo_emulator/camb``, else ``~/.cache/cosmo_emulator/camb``.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``emulator cache``."""
    p.add_argument("action", choices=("info", "clear"),
                   help="info: show the cache folder, its entries and size; clear: remove every entry")


def run(args: argparse.Namespace) -> int:
    """Show or empty the CAMB table cache."""
    from ..core.camb_cache import ENV_VAR, cache_info, clear_cache

    if args.action == "clear":
        folder = cache_info()[0]
        print(f"removed {clear_cache()} CAMB table(s) from {folder}")
        return 0
    folder, n, size = cache_info()
    if folder is None:
        print(f"CAMB table cache disabled ({ENV_VAR} is off)")
    else:
        print(f"CAMB table cache: {folder}\nentries: {n} ({size / 2**20:.2f} MiB)\n"
              f"(set {ENV_VAR} to move it, or to 'off' to disable it; 'emulator cache clear' empties it)")
    return 0
