package vm

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Result is a command's outcome in the guest.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs a bash command line in the guest, as root under the agent's
// service, and returns its output and exit status. An error means the
// harness could not tell (ctx ended, the VM went away), never that the
// command failed.
func (m *Machine) Run(ctx context.Context, command string) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	id := fmt.Sprintf("c%d", m.seq)
	line := id + " " + base64.StdEncoding.EncodeToString([]byte(command)) + "\n"
	if _, err := m.conn.Write([]byte(line)); err != nil {
		return Result{}, fmt.Errorf("run %q: send: %w", command, err)
	}
	var out, errb strings.Builder
	var cur *strings.Builder
	for {
		l, err := m.next(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("run %q: %w", command, err)
		}
		switch {
		case l == "@@ORBIT-OUT "+id:
			cur = &out
		case l == "@@ORBIT-ERR "+id:
			cur = &errb
		case strings.HasPrefix(l, "@@ORBIT-END "+id+" "):
			code, err := strconv.Atoi(strings.TrimPrefix(l, "@@ORBIT-END "+id+" "))
			if err != nil {
				return Result{}, fmt.Errorf("run %q: bad end marker %q", command, l)
			}
			so, err1 := base64.StdEncoding.DecodeString(out.String())
			se, err2 := base64.StdEncoding.DecodeString(errb.String())
			if err1 != nil || err2 != nil {
				return Result{}, fmt.Errorf("run %q: garbled output", command)
			}
			return Result{Stdout: string(so), Stderr: string(se), Code: code}, nil
		case cur != nil:
			cur.WriteString(l)
		}
		// Anything else is from an earlier command whose caller gave up.
	}
}
