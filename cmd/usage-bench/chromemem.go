//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// chromeMem is the memory of one process tree. RSS counts a shared page once
// per process that maps it, so its sum overstates a multi-process browser;
// PSS splits each shared page between its users and so adds up honestly.
type chromeMem struct {
	RSSKB, PSSKB int64
	Procs        int
	NoPSS        int // processes whose smaps_rollup could not be read
}

// chromeTreeMem sums VmRSS and Pss over root and all its descendants.
func chromeTreeMem(root int) (chromeMem, error) {
	pids, err := chromeTree(root)
	if err != nil {
		return chromeMem{}, err
	}
	var m chromeMem
	for _, pid := range pids {
		rss, err := procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
		if err != nil {
			continue // exited between the listing and now
		}
		m.Procs++
		m.RSSKB += rss
		if pss, err := procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:"); err == nil {
			m.PSSKB += pss
		} else {
			m.NoPSS++
		}
	}
	if m.Procs == 0 {
		return m, fmt.Errorf("bench: chromium pid %d is not running", root)
	}
	return m, nil
}

// chromeTree lists root and its descendants from the ppid field of
// /proc/*/stat.
func chromeTree(root int) ([]int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, fmt.Errorf("bench: list /proc: %w", err)
	}
	children := map[int][]int{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses; the fields
		// after its closing parenthesis are "state ppid ...".
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// procField reads a "Name:   123 kB" line of a /proc file, in kB.
func procField(path, name string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				break
			}
			return strconv.ParseInt(fields[0], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("bench: no %s in %s", name, path)
}
