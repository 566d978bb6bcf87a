//go:build linux

package main

import (
	"os"
	"testing"
)

func TestReadProcMemOfThisProcess(t *testing.T) {
	m, err := readProcMem(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if m.RSSKB <= 0 || m.HWMKB < m.RSSKB {
		t.Errorf("rss %d hwm %d kB", m.RSSKB, m.HWMKB)
	}
}

func TestProcCPUOfThisProcess(t *testing.T) {
	// Burn a little CPU so that at least one 10 ms tick is counted.
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i % 7
	}
	d, err := procCPU(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v (%d)", err, x)
	}
	if d <= 0 || selfCPU() <= 0 {
		t.Errorf("procCPU %v selfCPU %v", d, selfCPU())
	}
}
