import pytest

from replayer.errors import InputError
from replayer.records import RecordWriter, RequestRecord, read_records


def record(i: int, **kwargs) -> RequestRecord:
    return RequestRecord(id=i, intended_ns=i * 10, input_tokens=5, output_tokens=3, **kwargs)


def test_round_trip_keeps_header_and_every_field(tmp_path):
    path = tmp_path / "records.jsonl"
    writer = RecordWriter(path, {"tool": "replayer", "t0_wall_ns": 1})
    first = record(1, sent_ns=11, first_token_ns=20, end_ns=40, served_input_tokens=5, served_output_tokens=3,
                   itl_us=[10, 10])
    second = record(2, sent_ns=21, status="http_500", error="boom", end_ns=30)
    writer.write(first)
    writer.write(second)
    writer.close()
    read = read_records(path)
    assert read.header == {"tool": "replayer", "t0_wall_ns": 1}
    assert read.records == [first, second]
    assert not read.torn_last_line


def test_each_record_is_on_disk_before_close(tmp_path):
    path = tmp_path / "records.jsonl"
    writer = RecordWriter(path, {})
    writer.write(record(1))
    assert len(read_records(path).records) == 1
    writer.close()


def test_torn_last_line_is_skipped_and_reported(tmp_path):
    path = tmp_path / "records.jsonl"
    writer = RecordWriter(path, {})
    writer.write(record(1))
    writer.close()
    with open(path, "a") as handle:
        handle.write('{"id":2,"intended_')
    read = read_records(path)
    assert [r.id for r in read.records] == [1]
    assert read.torn_last_line


def test_malformed_middle_line_names_its_line(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"header":{}}\nnot json\n{"id":1,"intended_ns":0,"input_tokens":1,"output_tokens":1}\n')
    with pytest.raises(InputError, match=r"records.jsonl:2: malformed record"):
        read_records(path)


def test_missing_header_is_refused(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"id":1}\n')
    with pytest.raises(InputError, match="not a replayer records header"):
        read_records(path)
