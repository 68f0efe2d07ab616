"""stage-in against the generated sample catalog: what the platform's stage-in promises, and more items."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pystac
import pytest

from eopack_eo_common.search import Search, select_items
from eopack_stage_in.cli import main
from eopack_stage_in.core import stage_in


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sample_items(sample_catalog: Path) -> list[pystac.Item]:
    return list(pystac.Catalog.from_file(str(sample_catalog)).get_items(recursive=True))


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A loopback HTTP server for ``tmp_path/www`` (quiet)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_catalog_items_become_direct_children_with_their_assets(sample_catalog: Path, tmp_path: Path) -> None:
    staged = stage_in([str(sample_catalog)], tmp_path / "out")
    source = {i.id: i for i in _sample_items(sample_catalog)}
    root = pystac.Catalog.from_file(str(staged.catalog))
    items = list(root.get_items())  # not recursive: what the platform's stage-out reads
    assert sorted(i.id for i in items) == sorted(source) == list(staged.item_ids)
    for item in items:
        assert item.collection_id == "sentinel-2-l2a"
        assert not [lk for lk in item.links if lk.rel == "collection"]  # no link back to the archive
        for key, asset in item.assets.items():
            local = Path(asset.get_absolute_href() or "")
            assert local.parent == tmp_path / "out" / item.id
            assert _sha(local) == _sha(Path(source[item.id].assets[key].get_absolute_href() or ""))
    doc = json.loads(staged.catalog.read_text())
    assert all(not lk["href"].startswith("/") for lk in doc["links"])  # self-contained


def test_an_item_over_http_stages_one_item(
    sample_catalog: Path, http_root: tuple[Path, str], tmp_path: Path, allow_private: None
) -> None:
    import shutil

    www, base = http_root
    shutil.copytree(sample_catalog.parent, www / "sample")
    item = next(iter(_sample_items(sample_catalog)))
    rel = Path(item.get_self_href() or "").relative_to(sample_catalog.parent)
    staged = stage_in([f"{base}/sample/{rel}"], tmp_path / "out")
    assert staged.item_ids == (item.id,)
    assert (tmp_path / "out" / item.id / "B04.tif").stat().st_size > 0


def test_a_paged_search_is_followed_to_the_last_page(
    sample_catalog: Path, http_root: tuple[Path, str], tmp_path: Path, allow_private: None
) -> None:
    import shutil

    www, base = http_root
    shutil.copytree(sample_catalog.parent, www / "sample")
    items = _sample_items(sample_catalog)
    pages = [items[i : i + 5] for i in range(0, len(items), 5)]
    for n, page in enumerate(pages):
        features = []
        for item in page:
            d = item.to_dict()
            for asset in d["assets"].values():  # absolute, as an API serves them
                rel = Path(item.get_self_href() or "").parent.relative_to(sample_catalog.parent)
                asset["href"] = f"{base}/sample/{rel}/{Path(asset['href']).name}"
            d["links"] = []
            features.append(d)
        links = [{"rel": "next", "href": f"page{n + 1}.json"}] if n + 1 < len(pages) else []
        (www / f"page{n}.json").write_text(
            json.dumps({"type": "FeatureCollection", "features": features, "links": links})
        )
    staged = stage_in([f"{base}/page0.json"], tmp_path / "out")
    assert len(pages) >= 3 and sorted(staged.item_ids) == sorted(i.id for i in items)


def test_loopback_urls_are_refused_unless_allowed(
    http_root: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _www, base = http_root
    assert main([f"{base}/item.json", "--outdir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "EOPACK_ALLOW_PRIVATE_URLS" in err[0]


def test_not_stac_is_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.json").write_text('{"hello": 1}')
    assert main([str(tmp_path / "x.json"), "--outdir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"stage-in: error: {tmp_path / 'x.json'} is a JSON object without type, not a STAC Item, ItemCollection/search or Catalog"
    ]


def test_as_file_downloads_one_file(tmp_path: Path) -> None:
    (tmp_path / "graph.json").write_text('{"process_graph": {}}')
    assert main([(tmp_path / "graph.json").as_uri(), "--as-file", "--outdir", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "graph.json").read_text() == '{"process_graph": {}}'


def test_the_tools_read_a_staged_catalog_without_a_collection_object(
    sample_catalog: Path, tmp_path: Path
) -> None:
    """The packages select from a stage-in's flat catalog by the items' collection field."""
    stage_in([str(sample_catalog)], tmp_path / "out")
    search = Search.from_args("sentinel-2-l2a", "11.4,46.5,11.5,46.6", "2024-06-01", "2024-07-31")
    staged = select_items(search, input_catalog=tmp_path / "out")
    original = select_items(search, input_catalog=sample_catalog.parent)
    assert [i.id for i in staged] == [i.id for i in original] and staged
