package update

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEtcOverridesUsrKeyByKey(t *testing.T) {
	dir := t.TempDir()
	usr := filepath.Join(dir, "usr.conf")
	etc := filepath.Join(dir, "etc.conf")
	os.WriteFile(usr, []byte("GROUP=stable\nSERVER=https://updates.example/v1/update/\nREBOOT_STRATEGY=etcd-lock\n"), 0o644)
	os.WriteFile(etc, []byte("# admin\nGROUP=\"beta\"\nLOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00\n"), 0o644)
	c, err := LoadConfig(usr, etc, filepath.Join(dir, "missing.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Group != "beta" || c.Server != "https://updates.example/v1/update/" || c.RebootStrategy != "etcd-lock" || c.AppID != DefaultAppID {
		t.Errorf("config %+v", c)
	}
	os.WriteFile(etc, []byte("REBOOT_STRATEGY=sometimes\n"), 0o644)
	if _, err := LoadConfig(usr, etc); err == nil {
		t.Error("accepted REBOOT_STRATEGY=sometimes")
	}
	os.WriteFile(etc, []byte("GROUP beta\n"), 0o644)
	if _, err := LoadConfig(usr, etc); err == nil {
		t.Error("accepted a line without =")
	}
}

func TestActiveSlotFromCmdline(t *testing.T) {
	for cmdline, want := range map[string]string{
		"console=ttyS0 orbit.slot=B ro":                   "B",
		"root=LABEL=ROOT mount.usr=PARTLABEL=USR-A quiet": "A",
		"usr=PARTLABEL=USR-B":                             "B",
	} {
		if got, err := ActiveSlotFromCmdline(cmdline); err != nil || got != want {
			t.Errorf("%q: %q %v", cmdline, got, err)
		}
	}
	for _, bad := range []string{"quiet", "orbit.slot=C", "mount.usr=/dev/vda3"} {
		if got, err := ActiveSlotFromCmdline(bad); err == nil {
			t.Errorf("%q: %q", bad, got)
		}
	}
}

func TestScheduleBacksOffAndJitters(t *testing.T) {
	s := Schedule{Interval: time.Hour, Jitter: 10 * time.Minute, Retry: time.Minute}
	if d := s.Next(0, 0); d != time.Hour {
		t.Errorf("after success, no jitter: %v", d)
	}
	if d := s.Next(0, 0.5); d != time.Hour+5*time.Minute {
		t.Errorf("after success, half jitter: %v", d)
	}
	prev := time.Duration(0)
	for f := 1; f <= 10; f++ {
		d := s.Next(f, 0)
		if d < prev || d > time.Hour {
			t.Errorf("after %d failures: %v (previous %v)", f, d, prev)
		}
		prev = d
	}
	if s.Next(1, 0) != time.Minute || s.Next(3, 0) != 4*time.Minute || s.Next(10, 0) != time.Hour {
		t.Errorf("backoff 1,3,10: %v %v %v", s.Next(1, 0), s.Next(3, 0), s.Next(10, 0))
	}
}

func TestStatusFileIsShellReadable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status")
	if err := WriteStatus(p, Status{"STATE": StatusNeedReboot, "LAST_ERROR": "it's bad: x y"}); err != nil {
		t.Fatal(err)
	}
	s, err := ReadStatus(p)
	if err != nil || s["STATE"] != StatusNeedReboot || s["LAST_ERROR"] != "its bad: x y" {
		t.Errorf("%v %v", s, err)
	}
}
