"""The real-data registry: local mirror, loopback downloads, hash checks, clear errors."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest
import xarray as xr

from xdownscale.datasets import data_names, fetch_data, open_data
from xdownscale.datasets import registry as dreg

from .conftest import SHARED_DATA, shared_file


@pytest.fixture
def fake_entry(monkeypatch, tmp_path):
    """Register 'test/tiny.nc' (a real netCDF file) and return (bytes, name)."""
    src = tmp_path / "src"
    (src / "test").mkdir(parents=True)
    xr.Dataset({"a": ("x", [1.0, 2.0, 3.0])}).to_netcdf(src / "test" / "tiny.nc")
    data = (src / "test" / "tiny.nc").read_bytes()
    monkeypatch.setitem(dreg.DATA_FILES, "test/tiny.nc", (hashlib.sha256(data).hexdigest(), "tiny"))
    monkeypatch.delenv("XDOWNSCALE_DATA_DIR", raising=False)
    monkeypatch.delenv("XDOWNSCALE_DATA_URL", raising=False)
    monkeypatch.setenv("XDOWNSCALE_CACHE", str(tmp_path / "cache"))
    return src, "test/tiny.nc"


def test_unknown_name_and_no_source(fake_entry):
    with pytest.raises(ValueError, match=r"unknown data file 'radar/x.nc'; registered: demo/"):
        fetch_data("radar/x.nc")
    with pytest.raises(FileNotFoundError, match=r"no source is configured.*XDOWNSCALE_DATA_DIR"):
        fetch_data("test/tiny.nc")


def test_local_mirror_is_used_in_place_and_hash_checked(fake_entry, monkeypatch, tmp_path):
    src, name = fake_entry
    monkeypatch.setenv("XDOWNSCALE_DATA_DIR", str(src))
    assert fetch_data(name) == src / name
    assert open_data(name)["a"].values.tolist() == [1.0, 2.0, 3.0]
    (src / name).write_bytes(b"not the registered file")
    with pytest.raises(ValueError, match=r"has sha256 .* not the registered"):
        fetch_data(name)
    monkeypatch.setenv("XDOWNSCALE_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="is not in the mirror XDOWNSCALE_DATA_DIR"):
        fetch_data(name)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.network
def test_download_from_a_loopback_server(fake_entry, monkeypatch, tmp_path):
    src, name = fake_entry
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(src))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("XDOWNSCALE_DATA_URL", f"http://127.0.0.1:{httpd.server_port}")
        path = fetch_data(name)
        assert (
            path.is_relative_to(tmp_path / "cache" / "data")
            and path.read_bytes() == (src / name).read_bytes()
        )
        (src / name).write_bytes(
            b"corrupt"
        )  # a second name would download; the cached file is kept
        assert fetch_data(name) == path
        path.unlink()
        with pytest.raises(ValueError, match="does not have the registered sha256"):
            fetch_data(name)
        assert not path.exists()  # the corrupt download was not kept
    finally:
        httpd.shutdown()
        httpd.server_close()
    monkeypatch.setenv("XDOWNSCALE_RETRIES", "0")
    with pytest.raises(ConnectionError, match=r"could not download data file 'test/tiny\.nc'"):
        fetch_data(name)


def test_registry_matches_the_shared_data(monkeypatch):
    path = shared_file(
        "demo/era5_t2m_2019-03_uk_0p25deg.nc"
    )  # skips cleanly when ../shared/data is absent
    monkeypatch.setenv("XDOWNSCALE_DATA_DIR", str(SHARED_DATA))
    assert fetch_data("demo/era5_t2m_2019-03_uk_0p25deg.nc") == path
    ds = open_data("demo/era5_t2m_2019-03_uk_0p25deg.nc")
    assert "t2m" in ds.data_vars and ds.sizes["time"] == 744
    assert len(data_names()) == 8
