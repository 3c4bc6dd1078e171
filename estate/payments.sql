-- The billing system of the demo estate. Created by the estate loader, not by the product's migrations.
CREATE TABLE IF NOT EXISTS customers (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    billing_name text,
    billing_address text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS customers_email ON customers (lower(trim(email)));
CREATE TABLE IF NOT EXISTS cards (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    number text NOT NULL,
    cvc text,
    exp text,
    added_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS subscriptions (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    product text NOT NULL,
    status text NOT NULL,
    renews_at timestamptz
);
CREATE TABLE IF NOT EXISTS transactions (
    id bigserial PRIMARY KEY,
    customer_id bigint REFERENCES customers (id) ON DELETE SET NULL,
    billing_email text NOT NULL,
    amount numeric(12, 2) NOT NULL,
    currency text NOT NULL,
    at timestamptz NOT NULL,
    item text
);
CREATE INDEX IF NOT EXISTS cards_customer ON cards (customer_id);
CREATE INDEX IF NOT EXISTS subscriptions_customer ON subscriptions (customer_id);
CREATE INDEX IF NOT EXISTS transactions_email ON transactions (lower(trim(billing_email)));
