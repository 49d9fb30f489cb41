/* fleet_schema: creates or migrates a benchmark database with the collector's own store code. */
#ifndef FLEET_SCHEMA_H
#define FLEET_SCHEMA_H

/*
 * Opens `path` with store_open (SQLite: created if missing, migrated to this build's schema) and
 * closes it again, so the benchmarks that then write raw SQL use exactly the collector's tables
 * and indexes instead of a copy of its DDL. Exits the process with a message on failure.
 */
void fleet_schema_create(const char *path);

#endif
