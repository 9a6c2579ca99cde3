package slot

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// EnvSize is the size of a GRUB environment block; GRUB rewrites the file
// in place through its block list and never changes its size.
const EnvSize = 1024

const envHeader = "# GRUB Environment Block\n"

// Env is the contents of a GRUB environment block.
type Env map[string]string

// ParseEnv reads a GRUB environment block.
func ParseEnv(b []byte) (Env, error) {
	if !bytes.HasPrefix(b, []byte(envHeader)) {
		return nil, fmt.Errorf("parse GRUB environment block: no %q header", strings.TrimSpace(envHeader))
	}
	env := Env{}
	for _, line := range strings.Split(string(b[len(envHeader):]), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("parse GRUB environment block: line %q has no '='", line)
		}
		env[k] = strings.NewReplacer(`\n`, "\n", `\\`, `\`).Replace(v)
	}
	return env, nil
}

// Format writes the block GRUB's load_env reads: sorted lines, padded
// with '#' to EnvSize.
func (e Env) Format() ([]byte, error) {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString(envHeader)
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "=\n") {
			return nil, fmt.Errorf("format GRUB environment block: bad name %q", k)
		}
		b.WriteString(k + "=" + strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(e[k]) + "\n")
	}
	if b.Len() > EnvSize {
		return nil, fmt.Errorf("format GRUB environment block: %d bytes, more than %d", b.Len(), EnvSize)
	}
	b.Write(bytes.Repeat([]byte("#"), EnvSize-b.Len()))
	return b.Bytes(), nil
}

// The loader's variables for a slot.
func envVar(name, field string) string { return "orbit_" + strings.ToLower(name) + "_" + field }

// SetSlot writes a slot's metadata into the environment.
func (e Env) SetSlot(s Slot) {
	e[envVar(s.Name, "priority")] = strconv.Itoa(s.Priority)
	e[envVar(s.Name, "tries")] = strconv.Itoa(s.Tries)
	ok := "0"
	if s.Successful {
		ok = "1"
	}
	e[envVar(s.Name, "successful")] = ok
}

// Slot reads a slot's metadata from the environment.
func (e Env) Slot(name string) (Slot, error) {
	s := Slot{Name: name}
	for _, f := range []struct {
		field string
		v     *int
		max   int
	}{{"priority", &s.Priority, MaxPriority}, {"tries", &s.Tries, MaxTries}} {
		n, err := strconv.Atoi(e[envVar(name, f.field)])
		if err != nil || n < 0 || n > f.max {
			return s, fmt.Errorf("GRUB environment: %s=%q is not 0–%d", envVar(name, f.field), e[envVar(name, f.field)], f.max)
		}
		*f.v = n
	}
	switch v := e[envVar(name, "successful")]; v {
	case "1":
		s.Successful = true
	case "0":
	default:
		return s, fmt.Errorf("GRUB environment: %s=%q is not 0 or 1", envVar(name, "successful"), v)
	}
	return s, nil
}

// ReadEnvFile reads the environment block at path (on the mounted ESP).
func ReadEnvFile(path string) (Env, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read GRUB environment: %w", err)
	}
	e, err := ParseEnv(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

// WriteEnvFile rewrites the environment block at path in place: same
// size, same blocks, as GRUB's save_env needs to find it again.
func WriteEnvFile(path string, e Env) error {
	b, err := e.Format()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write GRUB environment: %w", err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		return fmt.Errorf("write GRUB environment %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write GRUB environment %s: %w", path, err)
	}
	return f.Close()
}
