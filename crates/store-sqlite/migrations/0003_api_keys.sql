-- API keys (SECURITY.md). Only a SHA-256 of the secret is stored; `key_prefix` is the
-- recognisable start of the key, shown in listings.
CREATE TABLE api_keys (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    projects    TEXT    NOT NULL, -- JSON array of project ids, or ["*"]
    key_hash    BLOB    NOT NULL UNIQUE,
    key_prefix  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
