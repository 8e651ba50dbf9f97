-- Back to version 4: the previous release neither takes leases nor purges by category.
DROP INDEX IF EXISTS audit_events_category_time;
DROP TABLE IF EXISTS maintenance_leases;
