"""Do the manifest's files exist, and are they the size (and md5) it says?

Lookups run in a thread pool: on S3 each is a network round trip, and 10 000 of them one after
another would take minutes. Checksums of local files are not computed here — reading every
byte twice would double a build's time; the build verifies them while it copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from steward.errors import Detail, StewardError
from steward.packaging.manifest_model import FileFacts, Stat
from steward.packaging.manifest_paths import local_stat
from steward.packaging.manifest_read import detail
from steward.packaging.manifest_rows import Parsed

_Outcome = FileFacts | None | str


def _safe(stat: Stat, uri: str) -> _Outcome:
    try:
        return stat(uri)
    except StewardError as exc:
        return exc.message
    except OSError as exc:
        return exc.strerror or str(exc)
    except ValueError as exc:
        return str(exc)


def check_files(
    parsed: Sequence[Parsed], stat: Stat | None, workers: int, problems: list[Detail]
) -> None:
    """Look up every well-formed row's file; fill in size and storage class from storage.

    Without a ``stat`` (or with :func:`local_stat`) only ``file://`` rows can be checked, and
    S3 rows give one detail saying so rather than one per row.
    """
    # rows with other problems are looked up too (every problem at once), but a file listed
    # twice only once: its duplicate is already reported
    firsts: dict[str, Parsed] = {}
    for p in parsed:
        if p.row.uri:
            firsts.setdefault(p.row.uri, p)
    todo = list(firsts.values())
    if stat is None or stat is local_stat:
        remote = [p for p in todo if not p.row.uri.startswith("file://")]
        if remote:
            problems.append(
                detail(
                    remote[0].label,
                    "uri",
                    f"{len(remote)} s3:// file(s) cannot be checked without storage access "
                    "(no stat was given)",
                    row=remote[0].row.line,
                    value=remote[0].row.uri,
                )
            )
        todo = [p for p in todo if p.row.uri.startswith("file://")]
        stat = local_stat
    uris = [p.row.uri for p in todo]
    if not uris:
        return
    use = stat
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(uris)))) as pool:
        outcomes = dict(zip(uris, pool.map(lambda u: _safe(use, u), uris), strict=True))
    for p in todo:
        outcome = outcomes[p.row.uri]
        line, label = p.row.line, p.label
        if isinstance(outcome, str):
            problems.append(
                detail(
                    label, "uri", f"cannot check {p.row.uri}: {outcome}", row=line, value=p.row.uri
                )
            )
            continue
        if outcome is None:
            problems.append(
                detail(label, "uri", f"no such file: {p.row.uri}", row=line, value=p.row.uri)
            )
            continue
        if p.row.size is not None and p.row.size != outcome.size:
            problems.append(
                detail(
                    label,
                    "size",
                    f"the manifest says {p.row.size} bytes; storage has {outcome.size}",
                    row=line,
                    value=str(p.row.size),
                    accepted=str(outcome.size),
                )
            )
        if p.row.md5 and outcome.md5 and p.row.md5 != outcome.md5.lower():
            problems.append(
                detail(
                    label,
                    "md5",
                    f"the manifest says md5 {p.row.md5}; storage reports {outcome.md5.lower()}",
                    row=line,
                    value=p.row.md5,
                    accepted=outcome.md5.lower(),
                )
            )
        p.row = replace(p.row, size=outcome.size, storage_class=outcome.storage_class)
