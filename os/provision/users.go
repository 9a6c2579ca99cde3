package provision

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/ignition/v2/config/v3_5/types"
)

// passwdDB is the target's /etc/passwd, /etc/group and /etc/shadow, read
// whole, changed in memory while planning, and written back in one step.
type passwdDB struct {
	root                  string
	passwd, group, shadow [][]string // colon-separated fields, line by line
	changed               bool
}

type userEntry struct {
	uid, gid int
	home     string
}
type groupEntry struct{ gid int }

func readTable(root, name string, fields int) ([][]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "etc", name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read /etc/%s: %w", name, err)
	}
	var out [][]string
	for n, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != fields {
			return nil, fmt.Errorf("/etc/%s line %d: %d fields, want %d", name, n+1, len(f), fields)
		}
		out = append(out, f)
	}
	return out, nil
}

func readPasswd(root string) (*passwdDB, error) {
	db := &passwdDB{root: root}
	var err error
	if db.passwd, err = readTable(root, "passwd", 7); err != nil {
		return nil, err
	}
	if db.group, err = readTable(root, "group", 4); err != nil {
		return nil, err
	}
	if db.shadow, err = readTable(root, "shadow", 9); err != nil {
		return nil, err
	}
	return db, nil
}

func find(t [][]string, name string) int {
	return slices.IndexFunc(t, func(f []string) bool { return f[0] == name })
}

func (db *passwdDB) lookupUser(name string) (userEntry, bool) {
	i := find(db.passwd, name)
	if i < 0 {
		return userEntry{}, false
	}
	uid, _ := strconv.Atoi(db.passwd[i][2])
	gid, _ := strconv.Atoi(db.passwd[i][3])
	return userEntry{uid: uid, gid: gid, home: db.passwd[i][5]}, true
}

func (db *passwdDB) lookupGroup(name string) (groupEntry, bool) {
	i := find(db.group, name)
	if i < 0 {
		return groupEntry{}, false
	}
	gid, _ := strconv.Atoi(db.group[i][2])
	return groupEntry{gid: gid}, true
}

// freeID is the lowest ID from 1000 up that column col of t does not use.
func freeID(t [][]string, col int, also ...int) int {
	used := map[int]bool{}
	for _, f := range t {
		if n, err := strconv.Atoi(f[col]); err == nil {
			used[n] = true
		}
	}
	for _, n := range also {
		used[n] = true
	}
	id := 1000
	for used[id] {
		id++
	}
	return id
}

// planUser adds or updates a user in the in-memory tables and plans its
// home and SSH keys. An existing user keeps its IDs and home; it gets the
// password hash and keys the config gives.
func (p *Plan) planUser(u types.PasswdUser) error {
	db := p.users
	if u.Name == "" || strings.ContainsAny(u.Name, ":/\n") {
		return fmt.Errorf("bad user name %q", u.Name)
	}
	for _, g := range u.Groups {
		if _, ok := db.lookupGroup(string(g)); !ok {
			return fmt.Errorf("supplementary group %q does not exist", g)
		}
	}
	e, exists := db.lookupUser(u.Name)
	if !exists {
		uid := freeID(db.passwd, 2)
		if u.UID != nil {
			uid = *u.UID
			if slices.ContainsFunc(db.passwd, func(f []string) bool { return f[2] == strconv.Itoa(uid) }) {
				return fmt.Errorf("uid %d is taken", uid)
			}
		}
		if _, ok := db.lookupGroup(u.Name); ok {
			return fmt.Errorf("a group named %s exists already; its user group cannot be made", u.Name)
		}
		gid := uid
		if slices.ContainsFunc(db.group, func(f []string) bool { return f[2] == strconv.Itoa(gid) }) {
			gid = freeID(db.group, 2)
		}
		home := "/home/" + u.Name
		if u.HomeDir != nil {
			home = *u.HomeDir
		}
		shell := "/bin/bash"
		if u.Shell != nil {
			shell = *u.Shell
		}
		gecos := ""
		if u.Gecos != nil {
			gecos = *u.Gecos
		}
		db.passwd = append(db.passwd, []string{u.Name, "x", strconv.Itoa(uid), strconv.Itoa(gid), gecos, home, shell})
		db.group = append(db.group, []string{u.Name, "x", strconv.Itoa(gid), ""})
		db.shadow = append(db.shadow, []string{u.Name, "*", "", "0", "99999", "7", "", "", ""})
		db.changed = true
		e = userEntry{uid: uid, gid: gid, home: home}
	} else if u.UID != nil && *u.UID != e.uid {
		return fmt.Errorf("exists with uid %d, the config says %d", e.uid, *u.UID)
	}
	if u.PasswordHash != nil {
		i := find(db.shadow, u.Name)
		if i < 0 {
			return errors.New("has no /etc/shadow entry to set the password in")
		}
		db.shadow[i][1] = *u.PasswordHash
		db.changed = true
	}
	for _, g := range u.Groups {
		i := find(db.group, string(g))
		members := strings.Split(db.group[i][3], ",")
		if db.group[i][3] == "" {
			members = nil
		}
		if !slices.Contains(members, u.Name) {
			db.group[i][3] = strings.Join(append(members, u.Name), ",")
			db.changed = true
		}
	}
	createHome := !exists && (u.NoCreateHome == nil || !*u.NoCreateHome)
	if !createHome && len(u.SSHAuthorizedKeys) == 0 {
		return nil
	}
	home, err := p.resolve(e.home)
	if err != nil {
		return fmt.Errorf("home: %w", err)
	}
	var keys []string
	for _, k := range u.SSHAuthorizedKeys {
		keys = append(keys, strings.TrimSpace(string(k)))
	}
	p.laterSteps = append(p.laterSteps, step{"home and SSH keys of " + u.Name, func() error {
		if createHome {
			if err := os.MkdirAll(home, 0o700); err != nil {
				return err
			}
			if err := os.Chown(home, e.uid, e.gid); err != nil {
				return err
			}
		}
		if len(keys) == 0 {
			return nil
		}
		return addKeys(filepath.Join(home, ".ssh"), keys, e.uid, e.gid)
	}})
	return nil
}

// addKeys appends the keys authorized_keys does not hold yet.
func addKeys(dir string, keys []string, uid, gid int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	file := filepath.Join(dir, "authorized_keys")
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	have := strings.Split(string(old), "\n")
	out := string(old)
	if out != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	for _, k := range keys {
		if !slices.Contains(have, k) {
			out += k + "\n"
		}
	}
	return writeFile(file, []byte(out), 0o600, uid, gid)
}

// write puts the three tables back, each through a renamed temporary file.
func (db *passwdDB) write() error {
	for _, t := range []struct {
		name string
		rows [][]string
		mode fs.FileMode
	}{{"group", db.group, 0o644}, {"shadow", db.shadow, 0o640}, {"passwd", db.passwd, 0o644}} {
		var b strings.Builder
		for _, r := range t.rows {
			b.WriteString(strings.Join(r, ":") + "\n")
		}
		dst := filepath.Join(db.root, "etc", t.name)
		uid, gid := 0, 0
		if fi, err := os.Stat(dst); err == nil {
			t.mode = fi.Mode().Perm()
			if st, ok := statOwner(fi); ok {
				uid, gid = st[0], st[1]
			}
		}
		if err := writeFile(dst, []byte(b.String()), t.mode, uid, gid); err != nil {
			return err
		}
	}
	return nil
}
