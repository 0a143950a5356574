"""Running extractors over a dataset's files: every file's fate is recorded, none skipped."""

from __future__ import annotations

from pathlib import Path

from steward.crawl.extract import DatasetMetadata, FileStatus, extract_metadata
from steward.crawl.extractors.magetab import IdfExtractor, SdrfExtractor
from steward.crawl.extractors.sidecars import JsonSidecar
from steward.crawl.model import FoundFile
from steward.errors import StorageDenied
from tests.unit.crawl.site_plugin import Crashing

SET = Path(__file__).parent / "magetab"
IDF = (SET / "E-MTAB-1001.idf.txt").read_text(encoding="utf-8")
SDRF = (SET / "E-MTAB-1001.sdrf.txt").read_text(encoding="utf-8")
EXTRACTORS = (IdfExtractor(), SdrfExtractor(), JsonSidecar())


class Store:
    """Files by path, counting reads; a file named in ``denied`` cannot be read."""

    def __init__(self, files: dict[str, bytes], denied: frozenset[str] = frozenset()) -> None:
        self.files, self.denied = files, denied
        self.reads: list[str] = []

    def found(self) -> list[FoundFile]:
        return [FoundFile(p, len(b), mtime_ns=1) for p, b in self.files.items()]

    def read(self, file: FoundFile) -> bytes:
        self.reads.append(file.path)
        if file.path in self.denied:
            raise StorageDenied(f"Steward may not read /data/{file.path}")
        return self.files[file.path]


def statuses(metadata: DatasetMetadata) -> dict[str, str]:
    return {r.path: str(r.status) for r in metadata.files}


def test_a_magetab_set_yields_merged_fields_and_only_metadata_files_are_read() -> None:
    store = Store(
        {
            "E-MTAB-1001.idf.txt": IDF.encode(),
            "E-MTAB-1001.sdrf.txt": SDRF.encode(),
            "raw/run1.fq.gz": b"\x1f\x8b not metadata",
        }
    )
    metadata = extract_metadata(store.found(), EXTRACTORS, store.read, fallback="latin-1")
    assert metadata.fields["title"] == 'RNA-seq of human liver, "fasting" vs fed'
    assert metadata.fields["organism"] == ["Homo sapiens", "Mus musculus"]
    assert statuses(metadata) == {"E-MTAB-1001.idf.txt": "ok", "E-MTAB-1001.sdrf.txt": "ok"}
    assert sorted(store.reads) == ["E-MTAB-1001.idf.txt", "E-MTAB-1001.sdrf.txt"]
    assert metadata.notes == (
        "E-MTAB-1001.sdrf.txt: line 6 has 16 cells but the header has 15; the extra cells "
        "are ignored",
    )


def test_a_latin1_file_is_read_with_the_fallback_and_listed_as_needing_it() -> None:
    store = Store(
        {
            "E-MTAB-1003.idf.txt": (SET / "E-MTAB-1003.idf.txt").read_bytes(),  # Latin-1
            "E-MTAB-1001.idf.txt": IDF.encode(),  # UTF-8, in the same dataset
        }
    )
    metadata = extract_metadata(store.found(), EXTRACTORS, store.read, fallback="latin-1")
    assert metadata.needed_fallback == ("E-MTAB-1003.idf.txt",)
    reports = {r.path: (r.status, r.encoding) for r in metadata.files}
    assert reports == {
        "E-MTAB-1001.idf.txt": (FileStatus.OK, "utf-8"),
        "E-MTAB-1003.idf.txt": (FileStatus.FALLBACK, "iso8859-1"),
    }
    assert metadata.fields["curators"] == ["Marie Curie", "Jens Østergård"]  # by path order
    alone = extract_metadata(
        [f for f in store.found() if f.path == "E-MTAB-1003.idf.txt"],
        EXTRACTORS,
        store.read,
        fallback="latin-1",
    )
    assert alone.fields["title"] == "Transcriptome of Arabidopsis roots at 4 °C"
    assert alone.fields["submitters"] == ["Sérgio Gonçalves"]


def test_files_that_cannot_be_read_are_each_listed_with_the_reason() -> None:
    files = {
        "a.idf.txt": IDF.encode("latin-1"),  # no fallback declared: undecodable
        "b.idf.txt": (SET / "E-MTAB-1002.idf.txt").read_bytes(),  # broken quote
        "c.idf.txt": IDF.encode(),  # permission denied
        "d.sdrf.txt": b"\x00\x01binary",
        "e.json": b"[1, 2]",
        "f.idf.txt": IDF.encode(),  # too large
    }
    store = Store(files, denied=frozenset({"c.idf.txt"}))
    found = [f if f.path != "f.idf.txt" else FoundFile(f.path, 10**9) for f in store.found()]
    metadata = extract_metadata(found, EXTRACTORS, store.read, fallback=None)
    assert statuses(metadata) == {
        "a.idf.txt": "undecodable",
        "b.idf.txt": "invalid",
        "c.idf.txt": "unreadable",
        "d.sdrf.txt": "undecodable",
        "e.json": "invalid",
        "f.idf.txt": "too-large",
    }
    messages = {r.path: r.message or "" for r in metadata.files}
    assert "no fallback_encoding" in messages["a.idf.txt"]
    assert "line 3" in messages["b.idf.txt"]
    assert "may not read" in messages["c.idf.txt"]
    assert "NUL" in messages["d.sdrf.txt"]
    assert metadata.unreadable == tuple(sorted(files))
    assert "f.idf.txt" not in store.reads  # too large: never read at all
    assert metadata.fields == {}


def test_a_plugin_bug_is_recorded_and_the_others_still_run() -> None:
    store = Store({"E-MTAB-1001.idf.txt": IDF.encode()})
    metadata = extract_metadata(store.found(), (Crashing(), IdfExtractor()), store.read)
    by_extractor = {r.extractor: r for r in metadata.files}
    assert by_extractor["crashing"].status is FileStatus.INVALID
    assert "ZeroDivisionError: a plugin bug" in (by_extractor["crashing"].message or "")
    assert by_extractor["mage-tab-idf"].status is FileStatus.OK
    assert store.reads == ["E-MTAB-1001.idf.txt"]  # read once for both
    assert metadata.fields["accession"] == "E-MTAB-1001"


def test_disagreeing_files_keep_the_first_value_and_say_so() -> None:
    store = Store(
        {
            "a.json": b'{"title": "A", "tags": ["x"]}',
            "b.json": b'{"title": "B", "tags": ["y", "x"]}',
        }
    )
    metadata = extract_metadata(store.found(), EXTRACTORS, store.read)
    assert metadata.fields == {"title": "A", "tags": ["x", "y"]}
    assert metadata.notes == ("b.json: title differs from a.json; the value from a.json is kept",)
