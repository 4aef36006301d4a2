"""Decodes Confluent-framed Avro values with fastavro, independently of the
service: each value's writer schema is fetched by its id from the registry's
REST API (GET /schemas/ids/<id>).

stdin: one value per line, hex. stdout: one JSON object per line,
{"schema_id": N, "record": {...}}; timestamps as ISO-8601 UTC with
microseconds, decimals as strings, enums as their symbol.
"""

import datetime
import decimal
import io
import json
import struct
import sys
import urllib.request

import fastavro


def main() -> None:
    base = sys.argv[1].rstrip("/")
    schemas = {}
    for line in sys.stdin:
        value = bytes.fromhex(line.strip())
        magic, schema_id = struct.unpack(">bI", value[:5])
        if magic != 0:
            raise SystemExit(f"not the Confluent wire format: magic byte {magic}")
        if schema_id not in schemas:
            with urllib.request.urlopen(f"{base}/schemas/ids/{schema_id}") as r:
                text = json.load(r)["schema"]
            schemas[schema_id] = fastavro.parse_schema(json.loads(text))
        body = io.BytesIO(value[5:])
        record = fastavro.schemaless_reader(body, schemas[schema_id])
        if body.read():
            raise SystemExit("bytes left after the record")
        print(json.dumps({"schema_id": schema_id, "record": record}, default=plain))


def plain(v):
    if isinstance(v, datetime.datetime):
        return v.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")
    if isinstance(v, decimal.Decimal):
        return str(v)
    raise TypeError(f"cannot print {type(v)}")


if __name__ == "__main__":
    main()
