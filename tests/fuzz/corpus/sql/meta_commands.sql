SELECT 1;
  \connect other
	\set x 1
SELECT 2; \x not a line start
$tag$ open; body
