package units

import (
	"strings"
	"testing"
)

func TestEveryUnitHasItsBinDirFilledIn(t *testing.T) {
	names := Names()
	if len(names) < 5 {
		t.Fatalf("units: %v", names)
	}
	for _, n := range names {
		u, err := Unit(n, "/opt/orbit/bin")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(u, "@BINDIR@") {
			t.Errorf("%s still has @BINDIR@", n)
		}
	}
	if _, err := Unit("no-such.service", "/x"); err == nil {
		t.Error("a missing unit gave no error")
	}
}
