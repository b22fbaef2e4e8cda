DROP FUNCTION tether_fence(text, bigint);
DROP TABLE leadership;
