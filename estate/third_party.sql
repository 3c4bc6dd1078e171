-- Third-party-sourced data in the demo estate, and the suppression list that stops a source from
-- re-importing a person who asked to be erased (identity stored only as a keyed hash).
CREATE TABLE IF NOT EXISTS records (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    source text NOT NULL,
    source_kind text NOT NULL,
    category text NOT NULL,
    acquired_at timestamptz NOT NULL,
    data jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS records_email ON records (lower(trim(email)));
CREATE TABLE IF NOT EXISTS suppressions (
    identity_hash text NOT NULL,
    source text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (identity_hash, source)
);
