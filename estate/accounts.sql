-- The accounts system of the demo estate. Created by the estate loader, not by the product's migrations.
CREATE TABLE IF NOT EXISTS users (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    name text,
    phone text,
    address text,
    birth_year integer,
    gender text,
    country text,
    language text,
    password_hash text,
    password_changed_at timestamptz,
    password_hint text,
    organization text,
    organization_contact text,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- A demo estate loaded before the organisation's contact was kept gains its column.
ALTER TABLE users ADD COLUMN IF NOT EXISTS organization_contact text;
CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users (lower(trim(email)));
CREATE TABLE IF NOT EXISTS interests (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    topic text NOT NULL,
    source text NOT NULL DEFAULT 'provided'
);
CREATE TABLE IF NOT EXISTS searches (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    query text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS browse_history (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    url text NOT NULL,
    at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    os text,
    ip text,
    imei text,
    product_key text,
    first_seen timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS locations (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    precision text NOT NULL,
    at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS contacts (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    name text,
    email text
);
CREATE INDEX IF NOT EXISTS interests_user ON interests (user_id);
CREATE INDEX IF NOT EXISTS searches_user ON searches (user_id);
CREATE INDEX IF NOT EXISTS browse_history_user ON browse_history (user_id);
CREATE INDEX IF NOT EXISTS devices_user ON devices (user_id);
CREATE INDEX IF NOT EXISTS locations_user ON locations (user_id);
CREATE INDEX IF NOT EXISTS contacts_user ON contacts (user_id);
CREATE TABLE IF NOT EXISTS sign_ins (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    at timestamptz NOT NULL,
    ip text,
    device text,
    succeeded boolean NOT NULL DEFAULT true
);
CREATE TABLE IF NOT EXISTS usage_events (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    product text NOT NULL,
    feature text,
    at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS error_reports (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    product text NOT NULL,
    summary text,
    at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS social (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    kind text NOT NULL,
    target text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sign_ins_user ON sign_ins (user_id);
CREATE INDEX IF NOT EXISTS usage_events_user ON usage_events (user_id);
CREATE INDEX IF NOT EXISTS error_reports_user ON error_reports (user_id);
CREATE INDEX IF NOT EXISTS social_user ON social (user_id);
