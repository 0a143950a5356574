"""The sources config: parsed from TOML, YAML or JSON alike; every problem listed at once."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from steward.crawl.config import (
    DEFAULT_STAGES,
    CrawlConfig,
    MissingEnv,
    load_crawl_config,
    parse_crawl_config,
)
from steward.errors import NotFound, ValidationFailed

GOOD_TOML = r"""
[crawl]
stages = ["external", "incoming", "processed", "published"]
accession_mappings = [
    { left = "E-GEOD-{n}", right = "GSE{n}" },
    { left = "E-ERAD-{n}", right = "ERP{n:[0-9]{6}}" },
]

[[crawl.sources]]
name = "nfs-incoming"
project = "atlas"
url = "/nfs/atlas/incoming"
stage = "incoming"
tech = ["rna-seq", "scrna-seq"]
pattern = '^E-[A-Z]{4}-\d+$'
extractors = ["mage-tab-idf", "mage-tab-sdrf"]
exclude = ["**/tmp/**", "*.bak"]
fallback_encoding = "latin-1"

[[crawl.sources]]
name = "bucket"
project = "atlas"
url = "s3://atlas-data/published"
stage = "published"
pattern = '^(?P<accession>E-[A-Z]{4}-\d+)$'
found_in = "file"
file = "*.idf.txt"
endpoint = "https://s3.example.org"
region = "eu-west-2"
access_key_env = "ATLAS_S3_KEY"
secret_key_env = "ATLAS_S3_SECRET"

[[crawl.sources]]
name = "discovery"
project = "atlas"
url = "https://discovery.example.org/api/datasets?kind=rnaseq"
stage = "external"
pattern = '^(E-[A-Z]{4}-\d+)$'
field = "meta.accession"
items_field = "data"
token_env = "DISCOVERY_TOKEN"
pagination = { style = "cursor", cursor_field = "next", cursor_param = "after" }
timeout = 5
retries = 4
"""


def problems(exc: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, str]:
    return {d.field or "": str(d) for d in exc.value.details}


def test_a_good_config_is_read_with_its_meaning() -> None:
    config = parse_crawl_config(tomllib.loads(GOOD_TOML))
    assert config.stages == ("external", "incoming", "processed", "published")
    assert config.rank("published") > config.rank("incoming")
    folder, bucket, endpoint = config.sources
    assert (folder.kind, bucket.kind, endpoint.kind) == ("folder", "s3", "endpoint")
    assert folder.field == "crawl.sources[0]"
    assert folder.tech == ("rna-seq", "scrna-seq")
    assert folder.accession.found_in == "dir"
    assert folder.accession.accession_in("E-MTAB-12") == "E-MTAB-12"
    assert folder.fallback_encoding == "iso8859-1"
    assert folder.paths.wants_dir("a/tmp") is False
    assert bucket.accession.accession_in_file_name("E-MTAB-7.idf.txt") == "E-MTAB-7"
    assert (bucket.access_key_env, bucket.secret_key_env) == ("ATLAS_S3_KEY", "ATLAS_S3_SECRET")
    assert endpoint.accession.accession_in_record({"meta": {"accession": "E-MTAB-3"}}) == (
        "E-MTAB-3"
    )
    assert endpoint.pagination.style == "cursor"
    assert endpoint.pagination.cursor_param == "after"
    assert (endpoint.timeout, endpoint.retries) == (5.0, 4)
    assert [str(m) for m in config.mappings] == [
        "E-GEOD-{n} ↔ GSE{n}",
        "E-ERAD-{n} ↔ ERP{n:[0-9]{6}}",
    ]
    assert config.source("bucket") is bucket
    with pytest.raises(NotFound):
        config.source("nope")


def test_defaults_are_the_seed_stages_and_the_geo_mapping() -> None:
    config = parse_crawl_config(
        {
            "crawl": {
                "sources": [{"url": "/data", "project": "p1", "stage": "loading", "pattern": "^E-"}]
            }
        }
    )
    assert config.stages == DEFAULT_STAGES
    assert [m.other("E-GEOD-12") for m in config.mappings] == ["GSE12"]
    only = config.sources[0]
    assert only.name == "/data"  # the URL, when no name is given
    assert (only.include, only.exclude, only.extractors) == ((), (), ())


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
def test_toml_yaml_and_json_files_mean_the_same(tmp_path: Path, suffix: str) -> None:
    document = tomllib.loads(GOOD_TOML)
    path = tmp_path / f"sources{suffix}"
    if suffix == ".toml":
        path.write_text(GOOD_TOML)
    elif suffix == ".yaml":
        path.write_text(yaml.safe_dump(document["crawl"]))  # the crawl table itself
    else:
        path.write_text(json.dumps(document))
    loaded = load_crawl_config(path)
    expected = parse_crawl_config(document)
    # the YAML file is the crawl table itself, so its paths read sources[0], not crawl.sources[0]
    assert [replace(s, field="") for s in loaded.sources] == [
        replace(s, field="") for s in expected.sources
    ]
    assert loaded.stages == expected.stages
    assert loaded.origin == str(path)


def test_a_bare_list_of_sources_is_a_config(tmp_path: Path) -> None:
    path = tmp_path / "sources.json"
    path.write_text(
        json.dumps([{"url": "/data", "project": "p1", "stage": "external", "pattern": "^E-"}])
    )
    config = load_crawl_config(path)
    assert isinstance(config, CrawlConfig)
    assert config.sources[0].field == "sources[0]"


def test_every_problem_is_listed_at_once() -> None:
    document = {
        "crawl": {
            "stages": ["external", "loading", "loading"],
            "colour": "blue",
            "accession_mappings": [{"left": "E-GEOD-{n}", "right": "GSE{m}"}],
            "sources": [
                {"url": "/a", "project": "p1", "stage": "loading", "pattern": "^E-"},
                {
                    "url": "/b",
                    "project": "p1",
                    "stage": "curating",
                    "pattern": "^E-[A-Z{4}",
                    "extractors": ["mage-tab-idf", "magetab"],
                    "include": ["[abc"],
                    "fallback_encoding": "klingon",
                    "patern": "x",
                    "timeout": -1,
                    "token_env": "X",
                },
                {"url": "relative/path", "project": "p1", "stage": "loading", "pattern": "(a)(b)"},
                "not a table",
                {
                    "url": "s3://b/x",
                    "project": "p1",
                    "stage": "loading",
                    "pattern": "^E-",
                    "found_in": "file",
                },
                {
                    "url": "https://h/api",
                    "project": "p1",
                    "stage": "loading",
                    "pattern": "^E-",
                    "found_in": "dir",
                },
                {"url": "/a", "project": "p1", "stage": "loading", "pattern": "^E-"},
            ],
        }
    }
    with pytest.raises(ValidationFailed) as exc:
        parse_crawl_config(document)
    found = problems(exc)
    expected = {
        "crawl.colour": "unknown field",
        "crawl.stages[2]": "appears twice",
        "crawl.accession_mappings[0]": "same placeholders",
        "crawl.sources[1].stage": "unknown stage",
        "crawl.sources[1].pattern": "not a valid regular expression",
        "crawl.sources[1].extractors[1]": "unknown extractor",
        "crawl.sources[1].include[0]": "never closed",
        "crawl.sources[1].fallback_encoding": "unknown encoding",
        "crawl.sources[1].patern": "did you mean 'pattern'?",
        "crawl.sources[1].timeout": "must be a number",
        "crawl.sources[1].token_env": "only for endpoint sources",
        "crawl.sources[2].url": "not a location a crawl can read",
        "crawl.sources[2].pattern": "(?P<accession>",
        "crawl.sources[3]": "must be a table",
        "crawl.sources[4].file": "needs the glob",
        "crawl.sources[5].found_in": "not where this kind of source keeps accessions",
        "crawl.sources[6].name": "the same name as crawl.sources[0]",
    }
    for field, words in expected.items():
        assert field in found, f"{field} not reported; got {sorted(found)}"
        assert words in found[field], found[field]
    assert exc.value.message == f"steward.toml: the crawl sources have {len(found)} problems"
    # the known extractors are offered where an unknown one is named
    assert "mage-tab-sdrf" in found["crawl.sources[1].extractors[1]"]


def test_a_problem_names_what_was_given_and_what_is_accepted() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_crawl_config(
            {
                "crawl": {
                    "sources": [
                        {"url": "/a", "project": "p1", "stage": "nowhere", "pattern": "^E-"}
                    ]
                }
            }
        )
    (detail,) = exc.value.details
    assert detail.value == "nowhere"
    assert detail.accepted == ", ".join(DEFAULT_STAGES)


def test_missing_environment_variables_are_reported_apart_from_config_problems() -> None:
    document = tomllib.loads(GOOD_TOML)
    parse_crawl_config(document)  # no environ: the file alone is judged, and it is fine
    with pytest.raises(ValidationFailed) as exc:
        parse_crawl_config(document, environ={"ATLAS_S3_KEY": "x"})
    details = exc.value.details
    assert all(isinstance(d, MissingEnv) for d in details)
    assert {d.field for d in details} == {
        "crawl.sources[1].secret_key_env",
        "crawl.sources[2].token_env",
    }
    assert "ATLAS_S3_SECRET is not set" in str(details[0])
    # with a config problem as well, both are listed, and still told apart
    document["crawl"]["sources"][0]["stage"] = "nowhere"
    with pytest.raises(ValidationFailed) as exc:
        parse_crawl_config(document, environ={})
    kinds = {type(d).__name__ for d in exc.value.details}
    assert kinds == {"Detail", "MissingEnv"}


def test_file_syntax_errors_name_the_line_and_never_quote_it(tmp_path: Path) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    for suffix, text in (
        (".toml", f'[crawl]\nsecret = "{secret}\n'),
        (".yaml", f"crawl:\n  sources: [\n  - {secret}: : :\n"),
        (".json", f'{{"crawl": {{"k": "{secret}" "x"}}}}'),
    ):
        path = tmp_path / f"bad{suffix}"
        path.write_text(text)
        with pytest.raises(ValidationFailed) as exc:
            load_crawl_config(path)
        rendered = json.dumps(exc.value.as_problem()) + str(exc.value.details[0])
        assert "line" in rendered
        assert secret not in rendered


def test_unknown_file_types_and_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="not a sources file"):
        load_crawl_config(tmp_path / "sources.ini")
    with pytest.raises(NotFound):
        load_crawl_config(tmp_path / "absent.toml")


def test_stages_are_the_dataset_workflows_in_any_order() -> None:
    entry = {"url": "/a", "project": "p1", "stage": "loading", "pattern": "^E-"}
    reordered = parse_crawl_config({"stages": ["published", "loading"], "sources": [entry]})
    assert reordered.rank("loading") > reordered.rank("published")
    with pytest.raises(ValidationFailed) as exc:
        parse_crawl_config({"stages": ["incoming", "curating", "loading"], "sources": [entry]})
    (detail,) = exc.value.details
    assert (detail.field, detail.value) == ("stages[1]", "curating")
    assert "not one of the dataset stages" in detail.message
    assert detail.accepted == ", ".join(DEFAULT_STAGES)


def test_every_source_names_its_project() -> None:
    entry = {"url": "/a", "stage": "loading", "pattern": "^E-"}
    with pytest.raises(ValidationFailed) as exc:
        parse_crawl_config({"sources": [entry, {**entry, "name": "b", "project": "No Such!"}]})
    found = problems(exc)
    assert "a project is required" in found["sources[0].project"]
    assert "not a project id" in found["sources[1].project"]
    config = parse_crawl_config({"sources": [{**entry, "project": "atlas"}]})
    assert config.sources[0].project == "atlas"
