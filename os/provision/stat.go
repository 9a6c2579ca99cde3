package provision

import (
	"io/fs"
	"syscall"
)

// statOwner is a file's uid and gid, to keep them when it is rewritten
// (/etc/shadow belongs to group shadow on Debian).
func statOwner(fi fs.FileInfo) ([2]int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return [2]int{}, false
	}
	return [2]int{int(st.Uid), int(st.Gid)}, true
}
