CREATE TYPE order_status AS ENUM ('placed', 'paid', 'shipped', 'cancelled');
ALTER TABLE orders ADD COLUMN status order_status NOT NULL DEFAULT 'placed';
