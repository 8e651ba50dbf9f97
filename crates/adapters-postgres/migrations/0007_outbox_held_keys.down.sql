-- Back to version 6: claims work without it (version 6's claim does not read it).
DROP INDEX IF EXISTS outbox_held;
