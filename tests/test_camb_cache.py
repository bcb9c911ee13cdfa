"""The on-disk CAMB table cache (emulator.core.camb_cache): hits skip CAMB, bad files are rebuilt, keys differ.

CAMB itself is replaced by a fake table builder except in the one test that compares against a fresh CAMB run
(skipped without camb). Every test points ``COSMO_EMULATOR_CACHE`` at its own ``tmp_path``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from emulator.cli import main
from emulator.core import camb_cache, power
from emulator.core.cosmology import Cosmology, get_preset

# A cosmology no other test uses, so that the fake tables never reach another test through the memory cache.
FAKE = Cosmology(Omega_m=0.2833, Omega_b=0.0444, h=0.7111, n_s=0.9555, sigma8=0.7777)


def _fake_table(key: tuple[float, ...]) -> power._Table:
    """A power-law 'CAMB' table depending on the cosmology (n_s), with the layout of the real one."""
    k = np.geomspace(1e-4, 100.0, 50)
    lnk = np.linspace(math.log(k[0]), math.log(k[-1]), power._N_DENSE)
    return power._Table(k, 1e4 * k ** key[3], lnk, math.log(1e4) + key[3] * lnk, 2.1e-9)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder, fresh memory caches, and a fake CAMB that counts its calls."""
    monkeypatch.setenv(camb_cache.ENV_VAR, str(tmp_path / "camb"))
    calls = []

    def fake(key):
        calls.append(key)
        return _fake_table(key)

    monkeypatch.setattr(power, "_camb_linear_table", fake)
    power._linear_table.cache_clear()
    yield tmp_path / "camb", calls
    power._linear_table.cache_clear()
    power._nonlinear_table.cache_clear()


def _no_camb(*args, **kwargs):
    raise AssertionError("CAMB was called although the table is cached")


def test_second_lookup_reads_the_disk_not_camb(cache, monkeypatch):
    folder, calls = cache
    first = power.linear_power(FAKE, [0.01, 0.1, 1.0])
    assert len(calls) == 1 and len(list(folder.glob("*.npz"))) == 1
    power._linear_table.cache_clear()  # a new process: only the disk remains
    monkeypatch.setattr(power, "_camb_linear_table", _no_camb)
    monkeypatch.setattr(power, "_camb_results", _no_camb)
    again = power.linear_power(FAKE, [0.01, 0.1, 1.0])
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(again, 1e4 * np.array([0.01, 0.1, 1.0]) ** FAKE.n_s, rtol=1e-12)
    assert power._linear_table(FAKE.key()).a_s == 2.1e-9


def test_corrupted_file_is_ignored_with_a_warning_and_rebuilt(cache):
    folder, calls = cache
    power.linear_power(FAKE, [0.1])
    (path,) = folder.glob("*.npz")
    path.write_bytes(path.read_bytes()[:100])  # truncated
    power._linear_table.cache_clear()
    with pytest.warns(RuntimeWarning, match="unreadable CAMB cache file"):
        value = power.linear_power(FAKE, [0.1])
    assert len(calls) == 2
    np.testing.assert_allclose(value, 1e4 * 0.1**FAKE.n_s, rtol=1e-12)
    power._linear_table.cache_clear()
    power.linear_power(FAKE, [0.1])  # the rebuilt file is good
    assert len(calls) == 2


def test_keys_differ_by_cosmology_redshift_and_versions(monkeypatch):
    base = camb_cache.cache_key("linear", FAKE.key())
    assert base == camb_cache.cache_key("linear", FAKE.key())
    other = Cosmology(**{**FAKE.to_dict(), "sigma8": 0.7778})
    assert camb_cache.cache_key("linear", other.key()) != base
    assert camb_cache.cache_key("halofit", FAKE.key(), z=0.5) != camb_cache.cache_key("halofit", FAKE.key(), z=1.0)
    assert camb_cache.cache_key("halofit", FAKE.key(), z=0.0) != base
    monkeypatch.setattr(camb_cache, "camb_version", lambda: "0.0.0-other")
    assert camb_cache.cache_key("linear", FAKE.key()) != base
    monkeypatch.undo()
    monkeypatch.setattr(camb_cache, "TABLE_VERSION", camb_cache.TABLE_VERSION + 1)
    assert camb_cache.cache_key("linear", FAKE.key()) != base


def test_location_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(camb_cache.ENV_VAR, str(tmp_path / "here"))
    assert camb_cache.cache_dir() == tmp_path / "here"
    monkeypatch.delenv(camb_cache.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert camb_cache.cache_dir() == tmp_path / "xdg" / "cosmo_emulator" / "camb"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert camb_cache.cache_dir() == tmp_path / "home" / ".cache" / "cosmo_emulator" / "camb"
    monkeypatch.setenv(camb_cache.ENV_VAR, "off")
    assert camb_cache.cache_dir() is None


def test_disabled_cache_writes_nothing_and_recomputes(cache, monkeypatch):
    folder, calls = cache
    monkeypatch.setenv(camb_cache.ENV_VAR, "off")
    power.linear_power(FAKE, [0.1])
    power._linear_table.cache_clear()
    power.linear_power(FAKE, [0.1])
    assert len(calls) == 2 and not folder.exists()


def test_cache_command_info_and_clear(cache, capsys):
    folder, calls = cache
    power.linear_power(FAKE, [0.1])
    (folder / ".x.npz.1@host.abc.tmp").write_bytes(b"")  # a live writer's temporary is not ours to remove
    assert main(["cache", "info"]) == 0
    assert f"CAMB table cache: {folder}" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 CAMB table(s)" in capsys.readouterr().out
    assert not list(folder.glob("*.npz"))
    power._linear_table.cache_clear()
    power.linear_power(FAKE, [0.1])
    assert len(calls) == 2


def test_cached_tables_equal_a_fresh_camb_run(tmp_path, monkeypatch):
    """Real CAMB: the stored linear and halofit tables are bit-identical to what CAMB gives, and reused."""
    pytest.importorskip("camb")
    monkeypatch.setenv(camb_cache.ENV_VAR, str(tmp_path))
    cosmo = get_preset("planck18")
    k = np.geomspace(1e-3, 10.0, 40)
    try:
        power._linear_table.cache_clear()
        power._nonlinear_table.cache_clear()
        lin, nl = power.linear_power(cosmo, k, z=0.5), power.nonlinear_power(cosmo, k, z=0.5)
        fresh = power._camb_linear_table(cosmo.key())
        power._linear_table.cache_clear()
        power._nonlinear_table.cache_clear()
        monkeypatch.setattr(power, "_camb_results", _no_camb)
        stored = power._linear_table(cosmo.key())
        for a, b in zip(stored, fresh):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(power.linear_power(cosmo, k, z=0.5), lin)
        np.testing.assert_array_equal(power.nonlinear_power(cosmo, k, z=0.5), nl)
    finally:
        power._linear_table.cache_clear()
        power._nonlinear_table.cache_clear()


_WRITER = """
import sys, time
import numpy as np
from emulator.core import camb_cache
def compute():
    time.sleep(0.2)  # all writers miss, then race to store the same entry
    return {"a": np.arange(200_000, dtype=np.float64) * 0.5, "b": np.array(3.0)}
for _ in range(5):
    out = camb_cache.cached_arrays("racekey", ("a", "b"), compute)
    assert out["a"].shape == (200_000,) and out["a"][-1] == 99_999.5 and out["b"] == 3.0, "bad read"
print("ok")
"""


def test_concurrent_processes_share_one_entry(tmp_path):
    """Writers racing on one key never expose a partial file to each other and leave one entry behind."""
    import os
    import subprocess
    import sys

    env = {**os.environ, camb_cache.ENV_VAR: str(tmp_path), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    assert all(out.strip() == "ok" and "unreadable" not in err for out, err in results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["racekey.npz"]
