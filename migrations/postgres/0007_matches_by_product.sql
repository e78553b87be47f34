-- A product's trades, newest first, without a size (the product page's
-- "last sales", `GET /products/{id}/matches`): `matches_by_market` gives
-- them in id order only within one size, so the first page read every
-- trade of the product, or of every newer product.
CREATE INDEX matches_by_product ON matches (product_id, id);
