package stage1

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// Registration with systemd-machined, so that `machinectl list` shows the
// pod and `machinectl status` its processes. The pod is registered as it
// is, in the cgroup it already has (RegisterMachine, not CreateMachine: no
// scope of machined's making), with its init (a fly pod's app) as leader,
// and unregistered when it ends. Where there is no system bus or no
// machined, the pod runs unregistered: that is not an error.

const (
	machinedName = "org.freedesktop.machine1"
	machinedPath = "/org/freedesktop/machine1"
)

// machineName is the pod's name in machined: a valid host name.
func machineName(uuid string) string { return "orbit-" + uuid }

// registerMachine registers the running pod with machined, if it is there.
func (s *supervisor) registerMachine(leader int, root string) {
	id, err := hex.DecodeString(strings.ReplaceAll(s.m.UUID, "-", ""))
	if err != nil || len(id) != 16 {
		s.logf("machined: pod UUID %q is not 16 bytes: not registering", s.m.UUID)
		return
	}
	name := machineName(s.m.UUID)
	err = callMachined(func(ctx context.Context, o dbus.BusObject) error {
		return o.CallWithContext(ctx, machinedName+".Manager.RegisterMachine", 0,
			name, id, "orbit", "container", uint32(leader), root).Err
	})
	if err != nil {
		if absentMachined(err) {
			s.logf("machined: not registering the pod: %v", err)
		} else {
			fmt.Fprintf(os.Stderr, "stage1: register pod with systemd-machined: %v\n", err)
		}
		return
	}
	s.sd.machine = name
	s.logf("machined: registered as %s", name)
}

// unregisterMachine undoes registerMachine.
func (s *supervisor) unregisterMachine() {
	if s.sd.machine == "" {
		return
	}
	err := callMachined(func(ctx context.Context, o dbus.BusObject) error {
		return o.CallWithContext(ctx, machinedName+".Manager.UnregisterMachine", 0, s.sd.machine).Err
	})
	var de dbus.Error
	if err != nil && !(errors.As(err, &de) && de.Name == machinedName+".NoSuchMachine") {
		fmt.Fprintf(os.Stderr, "stage1: unregister pod from systemd-machined: %v\n", err)
	}
	s.sd.machine = ""
}

func callMachined(call func(context.Context, dbus.BusObject) error) error {
	// Bounded: a pod's start or end never waits long on the bus.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return &noBusError{err}
	}
	defer conn.Close()
	return call(ctx, conn.Object(machinedName, machinedPath))
}

type noBusError struct{ err error }

func (e *noBusError) Error() string { return "no system bus: " + e.err.Error() }
func (e *noBusError) Unwrap() error { return e.err }

// absentMachined tells a missing bus or machined from a refusal.
func absentMachined(err error) bool {
	var nb *noBusError
	if errors.As(err, &nb) {
		return true
	}
	var de dbus.Error
	if errors.As(err, &de) {
		switch de.Name {
		case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
			"org.freedesktop.systemd1.NoSuchUnit":
			return true
		}
	}
	return false
}
