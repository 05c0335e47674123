-- The idempotency fingerprint is 16 raw bytes (the first half of the SHA-256 of the
-- canonical body) instead of 64 hex characters (ARCHITECTURE.md, "Storage size"). A
-- retry of a request stored before this migration still matches, because its stored hex
-- is cut to the same bytes.
ALTER TABLE operations ALTER COLUMN request_hash TYPE BYTEA
    USING decode(left(request_hash, 32), 'hex');
