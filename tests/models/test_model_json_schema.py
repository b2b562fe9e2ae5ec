"""model.json has one meaning: the record (``runs.ModelInfo``) and its schema (``runs_schema``) agree.

The two still list the fields twice (issue 21 item 2 leaves the single-source rewrite to the next
session); until then a field added to one and not the other fails here, not in a user's run folder.
"""

from __future__ import annotations

import dataclasses

from medxfer.runs import ModelInfo
from medxfer.runs_schema import ModelInfoSchema


def test_record_and_schema_have_the_same_fields_and_defaults() -> None:
    record = {f.name: f for f in dataclasses.fields(ModelInfo)}
    schema = ModelInfoSchema.model_fields
    assert set(record) == set(schema)
    for name, f in record.items():
        if f.default is not dataclasses.MISSING:
            assert schema[name].default == f.default, name
        elif f.default_factory is not dataclasses.MISSING:
            made = schema[name].default_factory()
            made = made.model_dump() if hasattr(made, "model_dump") else made
            assert made == f.default_factory(), name
        else:
            assert schema[name].is_required(), name


def test_a_written_record_validates_and_reads_back_equal(tmp_path) -> None:  # noqa: ANN001
    from medxfer.runs import read_model_info

    info = ModelInfo(
        ["normal", "pneumonia"], "custom_cnn", "none", 32, (0.5,) * 3, (0.25,) * 3, threshold=0.3
    )
    (tmp_path / "model.json").write_text(info.to_json())
    assert read_model_info(tmp_path) == info
