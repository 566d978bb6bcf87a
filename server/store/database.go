package store

import "time"

// DatabaseStatus is what a database backend adds to Status: whether its
// last write check reached the database, how long it took, and whether the
// schema is the one this binary expects. The file store leaves it nil.
type DatabaseStatus struct {
	Reachable     bool
	Latency       time.Duration
	SchemaVersion int // the database's newest applied migration
	SchemaWanted  int // the newest migration this binary knows
}

// MigrationsCurrent reports whether the schema is exactly the expected one.
func (d DatabaseStatus) MigrationsCurrent() bool { return d.SchemaVersion == d.SchemaWanted }
