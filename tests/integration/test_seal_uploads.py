"""The seal aborts every multipart upload a killed worker left open, over every page of the listing.

ListMultipartUploads answers at most MaxUploads (1,000) uploads at a time; the rest come after
NextKeyMarker/NextUploadIdMarker while IsTruncated. moto 5.2 ignores MaxUploads and the markers
("The delimiter and max-uploads parameters have not yet been implemented") and always answers
everything in one page, so it could not show a seal that reads only the first page. Here a small
stand-in in front of moto pages its answer as S3 does (uploads ordered by key, then upload id; a page
boundary may fall between two uploads of one key), and the seal asks for pages of two.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from dynamodb_backup.aws import clients
from dynamodb_backup.backup.seal import abort_open_uploads, open_uploads
from dynamodb_backup.formats.layout import S3Location
from faultproxy.base import FaultProxy, Request, Response

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _tag(name: str) -> str:
    return f"{{{NS}}}{name}"


class PagingS3(FaultProxy):
    """Pages moto's ListMultipartUploads answer by max-uploads, key-marker and upload-id-marker."""

    name = "s3-paging"
    #: Called once the last page is built (a test's way to change the bucket between list and abort).
    on_last_page = staticmethod(lambda: None)

    def after(self, request: Request, original: Request, response: Response) -> Response:
        query = request.query
        if request.method != "GET" or "uploads" not in query or response.status != 200:
            return response
        root = ET.fromstring(response.body)
        uploads = root.findall(_tag("Upload"))
        for upload in uploads:
            root.remove(upload)

        def position(upload: ET.Element) -> tuple[str, str]:
            return upload.findtext(_tag("Key"), ""), upload.findtext(_tag("UploadId"), "")

        uploads.sort(key=position)
        key_marker = query.get("key-marker", [""])[0]
        id_marker = query.get("upload-id-marker", [""])[0]
        if key_marker and id_marker:
            uploads = [u for u in uploads if position(u) > (key_marker, id_marker)]
        elif key_marker:
            uploads = [u for u in uploads if position(u)[0] > key_marker]
        limit = int(query.get("max-uploads", ["1000"])[0])
        page, truncated = uploads[:limit], len(uploads) > limit
        self.count("pages")
        for name, value in (("KeyMarker", key_marker), ("UploadIdMarker", id_marker), ("MaxUploads", str(limit)),
                            ("IsTruncated", "true" if truncated else "false")):
            element = root.find(_tag(name))
            if element is None:
                element = ET.SubElement(root, _tag(name))
            element.text = value
        if truncated:
            last_key, last_id = position(page[-1])
            ET.SubElement(root, _tag("NextKeyMarker")).text = last_key
            ET.SubElement(root, _tag("NextUploadIdMarker")).text = last_id
        else:
            self.on_last_page()
        root.extend(page)
        ET.register_namespace("", NS)
        return Response(200, response.headers, ET.tostring(root, xml_declaration=True, encoding="UTF-8"))


def start_uploads(s3, bucket: str, keys: list[str]) -> list[tuple[str, str]]:
    return [(key, s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]) for key in keys]


def test_the_seal_aborts_open_uploads_on_every_page(local_aws, s3_bucket):
    direct = local_aws.s3_client()
    folder = S3Location(s3_bucket, "b/t/2024-01-01-00-00-00")
    # Three uploads of one key (a page boundary falls inside them), then four more keys.
    keys = [folder.key("data-0.gz")] * 3 + [folder.key(f"data-{i}.gz") for i in range(1, 5)]
    opened = start_uploads(direct, s3_bucket, keys)
    (other,) = start_uploads(direct, s3_bucket, ["b/t/2024-01-02-00-00-00/data-0.gz"])  # another folder's
    with PagingS3(local_aws.s3_url) as proxy:
        s3 = clients.client("s3", endpoint_url=proxy.url)
        assert sorted(open_uploads(s3, folder, page_size=2)) == sorted(opened)
        assert proxy.counters["pages"] == 4, "seven uploads in pages of two"

        assert abort_open_uploads(s3, folder, page_size=2) == 7
        assert not open_uploads(s3, folder, page_size=2)

        # An upload completed (or aborted) between the listing and its abort is no reason to stop.
        opened = start_uploads(direct, s3_bucket, [folder.key(f"again-{i}.gz") for i in range(5)])
        gone = opened[0]
        proxy.on_last_page = lambda: direct.abort_multipart_upload(Bucket=s3_bucket, Key=gone[0], UploadId=gone[1])
        assert abort_open_uploads(s3, folder, page_size=2) == 4

    left = direct.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in left] == [other], "only the other folder's upload is open"
