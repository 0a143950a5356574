"""The dataset tracker's building blocks: find datasets in storage and read their metadata.

Pure, I/O-light pieces that the crawl service (issue 11) assembles; nothing here touches the
database or decides a dataset's state.

- :mod:`~steward.crawl.config`: the sources config (``[[crawl.sources]]`` in ``steward.toml`` or
  a YAML/JSON file), validated with every problem listed at once and no secret ever echoed; the
  parsed records are in :mod:`~steward.crawl.config_model`, the per-entry checks in
  :mod:`~steward.crawl.config_source` and :mod:`~steward.crawl.config_problems`, the secret
  shapes in :mod:`~steward.crawl.inline_secrets`, the globs in :mod:`~steward.crawl.globs`.
- :mod:`~steward.crawl.credentials`: credentials *named* by environment variables, read late.
- :mod:`~steward.crawl.reach`: is a source reachable now (``steward crawl sources``).
- :mod:`~steward.crawl.listing`: ``open_source(config).list(previous_state)`` for any source;
  the per-kind listers are :mod:`~steward.crawl.sources_fs`, :mod:`~steward.crawl.sources_s3`
  and :mod:`~steward.crawl.sources_http`, the incremental state and change tracking
  :mod:`~steward.crawl.tracking`, the results :mod:`~steward.crawl.model`, per-request backoff
  :mod:`~steward.crawl.retry`.
- :mod:`~steward.crawl.extract` with :mod:`~steward.crawl.extractors`: metadata from a dataset's
  files (MAGE-TAB IDF/SDRF, JSON/YAML sidecars, TSV; sites add their own through the
  ``steward.extractors`` entry point group), decoded by :mod:`~steward.crawl.decoding`.
- :mod:`~steward.crawl.accessions`: accession patterns and secondary-accession mappings
  (``E-GEOD-n`` ↔ ``GSEn``) for duplicate detection.
"""
