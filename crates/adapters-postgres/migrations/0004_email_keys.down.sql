-- Back to version 3. Recomputed keys stay: they differ from the previous rule only for
-- non-ASCII addresses written in decomposed or compatibility forms, which the previous
-- release then finds by their composed spelling only.
DROP TABLE IF EXISTS email_rekey_pending;
