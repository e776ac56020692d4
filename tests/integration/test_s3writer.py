"""Rolling, multipart S3 writing against moto."""

import gzip

from dynamodb_backup.aws.s3writer import RollingWriter, S3ObjectWriter
from dynamodb_backup.formats.compression import make_compressor


def test_rolls_exactly_at_the_item_limit(local_aws, s3_bucket):
    s3 = local_aws.s3_client()
    writer = RollingWriter(lambda part: S3ObjectWriter(s3, s3_bucket, f"f{part}", "none"), max_items=10)
    writer.write_lines([b"%d" % i for i in range(7)])
    writer.write_lines([b"%d" % i for i in range(7, 25)])
    written = writer.close()
    assert [w.items for w in written] == [10, 10, 5]
    bodies = [s3.get_object(Bucket=s3_bucket, Key=w.key)["Body"].read() for w in written]
    assert b"".join(bodies) == b"".join(b"%d\n" % i for i in range(25))


def test_large_object_goes_up_in_parts_and_checksums_the_stored_bytes(local_aws, s3_bucket):
    import hashlib
    import random

    s3 = local_aws.s3_client()
    rng = random.Random(3)
    lines = [rng.randbytes(3000).hex().encode() for _ in range(4000)]  # ~24 MB of incompressible text
    writer = S3ObjectWriter(s3, s3_bucket, "big.gz", make_compressor("gzip"), part_size=5 * 1024 * 1024)
    for start in range(0, len(lines), 500):
        chunk = lines[start:start + 500]
        writer.write(b"\n".join(chunk) + b"\n", len(chunk))
    assert writer.multipart  # in parts, not one PutObject
    result = writer.close()
    stored = s3.get_object(Bucket=s3_bucket, Key="big.gz")["Body"].read()
    assert len(stored) == result.bytes
    assert hashlib.sha256(stored).hexdigest() == result.sha256
    assert gzip.decompress(stored) == b"\n".join(lines) + b"\n"
    assert result.items == 4000


def test_abort_leaves_no_object_and_no_upload(local_aws, s3_bucket):
    s3 = local_aws.s3_client()
    writer = S3ObjectWriter(s3, s3_bucket, "gone", "none", part_size=5 * 1024 * 1024)
    writer.write(b"x" * (6 * 1024 * 1024), 1)
    writer.abort()
    assert "Contents" not in s3.list_objects_v2(Bucket=s3_bucket)
    assert not s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
