package testutil

// TryRestart is Restart for a goroutine other than the test's (one that
// kills and restarts a server while the test drives it): such a goroutine
// must not call t.Fatal, so the error is returned.
func (p *Process) TryRestart() error { return p.start("") }
