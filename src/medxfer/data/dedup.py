"""Near-duplicate images as one "patient", so a grouped split keeps copies together.

Video frames (colonoscopy) and re-published copies (the COVID-19 Radiography Database reuses Kermany
and ieee8023 images) carry no shared patient id. Treating every exact or near-duplicate group found
by ``check`` as linking its members' patients makes ``assign_splits`` put all of them in one split.
"""

from __future__ import annotations

from medxfer.data.datasets import ImageTable


def merge_patients(table: ImageTable, groups: list[list[str]]) -> tuple[ImageTable, int]:
    """Give every image of each group of paths (and every image of those patients) one patient id.

    Returns the new table and the number of rows whose ``patient_id`` changed. The merged id is the
    smallest of the merged ids, so the result does not depend on the order of the rows. ``groups`` are
    e.g. the ``paths`` of ``medxfer check``'s duplicate groups.
    """
    df = table.table.reset_index(drop=True)
    patient_of = dict(zip(df["path"].astype(str), df["patient_id"], strict=True))
    parent = {p: p for p in df["patient_id"].unique()}

    def root(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for group in groups:
        roots = {root(patient_of[path]) for path in group if path in patient_of}
        if not roots:
            continue
        smallest = min(roots)
        for r in roots:
            parent[r] = smallest
    merged = df["patient_id"].map(root)
    changed = int((merged != df["patient_id"]).sum())
    return table.with_table(df.assign(patient_id=merged)), changed


def merge_duplicate_patients(
    table: ImageTable, workers: int = 2, progress: bool = True, radius: int | None = None
) -> tuple[ImageTable, int]:
    """Find exact and near-duplicate images (as ``check`` does) and :func:`merge_patients` them.

    Example::

        table, changed = merge_duplicate_patients(load_datasets(["csv:colon/labels.csv"]))
    """
    from medxfer.data.check import NEAR_RADIUS, duplicate_index_groups
    from medxfer.data.scan import scan_files

    paths = [str(p) for p in table.table["path"]]
    exact, near = duplicate_index_groups(
        scan_files(paths, workers=workers, progress=progress), radius or NEAR_RADIUS
    )
    groups = exact + near
    return merge_patients(table, [[paths[i] for i in g] for g in groups])
