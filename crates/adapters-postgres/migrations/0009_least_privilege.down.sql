-- Back to version 8: the retention and partition functions and the floor go; grants made to
-- an application role on them go with them (grants on tables stay).
DROP FUNCTION credo_audit_partition_drop(text, timestamptz);
DROP FUNCTION credo_audit_partition_create(text, uuid, uuid);
DROP FUNCTION credo_audit_purge(timestamptz, text, integer);
DROP FUNCTION credo_audit_floor_check(timestamptz);
DROP TABLE audit_retention_floor;
