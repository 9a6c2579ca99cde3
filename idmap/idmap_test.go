package idmap

import "testing"

func TestReleaseAtLeast(t *testing.T) {
	for rel, want := range map[string]bool{
		"6.18.44-fc-v769": true,
		"5.19.0":          true,
		"5.18.17":         false,
		"6.1.0-18-amd64":  true,
		"4.19.0":          false,
		"6":               false,
		"x.y":             false,
		"6.0rc1":          true,
	} {
		if got := releaseAtLeast(rel, 5, 19); got != want {
			t.Errorf("releaseAtLeast(%q, 5, 19) = %v", rel, got)
		}
	}
}
