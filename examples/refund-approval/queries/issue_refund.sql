-- datasource: shop_db
-- retries: 2
INSERT INTO refunds (order_id, amount) VALUES ({{ params.order_id }}, {{ params.amount }})
ON CONFLICT (order_id) DO NOTHING
