-- datasource: shop_db
-- timeout: 5s
SELECT id, customer, email, amount, status FROM orders WHERE id = {{ params.order_id }}
