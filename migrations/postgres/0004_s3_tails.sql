-- With S3 storage: the bytes of an unfinished upload after its last part
-- sent to the bucket (S3 refuses parts under 5 MiB but the last), in
-- pieces, each written once by the request that received its bytes. The
-- upload's recorded blob_state lists the pieces that make its tail; the
-- others are deleted when their part is recorded, or with the upload.
CREATE TABLE s3_tails (
    blob_key TEXT NOT NULL,
    name     TEXT NOT NULL,
    bytes    BYTEA NOT NULL,
    PRIMARY KEY (blob_key, name)
);
