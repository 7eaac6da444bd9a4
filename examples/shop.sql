-- A tiny shop for the examples.
CREATE TABLE orders (
    id        INTEGER PRIMARY KEY,
    customer  TEXT NOT NULL,
    email     TEXT NOT NULL,
    amount    NUMERIC NOT NULL,
    status    TEXT NOT NULL DEFAULT 'paid'
);
CREATE TABLE refunds (
    order_id    INTEGER PRIMARY KEY REFERENCES orders(id),
    amount      NUMERIC NOT NULL,
    refunded_at TEXT NOT NULL DEFAULT (datetime('now'))
);
INSERT INTO orders (id, customer, email, amount) VALUES
    (1, 'Ada Lovelace', 'ada@example.com', 7.50),
    (2, 'Grace Hopper', 'grace@example.com', 129.00),
    (3, 'Alan Turing', 'alan@example.com', 42.00);
