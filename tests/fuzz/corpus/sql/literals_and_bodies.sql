CREATE FUNCTION f(a int) RETURNS text LANGUAGE sql AS $body$ SELECT 'x;y' $body$;
DO $$ BEGIN RAISE NOTICE '%', $1; END $$;
SELECT E'it\'s; escaped', U&'\0041;', B'1010', X'1F', N'n;', 'a''b;c';
SELECT "quoted;id", U&"d\0061t;a" UESCAPE '!';
/* a /* nested; */ comment; */ SELECT 1::int; -- trailing; comment
SELECT $1, $2 FROM t WHERE a <> b AND c::text ~ 'x';
