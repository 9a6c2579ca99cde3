package stage1

import "testing"

func TestRewriteNotify(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"READY=1", "READY=1"},
		{"READY=1\nSTATUS=serving\n", "READY=1\nSTATUS=serving"},
		// The unit's main PID is the supervisor, whatever the app says.
		{"MAINPID=1\nREADY=1", "MAINPID=42\nREADY=1"},
		// Descriptors are not passed on, so neither are the lines about them.
		{"FDSTORE=1\nFDNAME=db", ""},
		{"BARRIER=1", ""},
		{"WATCHDOG=1", "WATCHDOG=1"},
	} {
		if got := rewriteNotify(c.in, 42); got != c.want {
			t.Errorf("rewriteNotify(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
