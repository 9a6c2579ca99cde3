package stage0

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// resolveUser turns an image's or a flag's user ("", "name", "uid",
// "name:group", "uid:gid") into numeric IDs, reading /etc/passwd and
// /etc/group from the image's layers.
func resolveUser(layers []string, u, g string) (specs.User, error) {
	spec := u
	if g != "" {
		spec = strings.SplitN(u, ":", 2)[0] + ":" + g
	}
	if spec == "" {
		return specs.User{}, nil
	}
	passwd, err := layerFile(layers, "/etc/passwd")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return specs.User{}, err
	}
	group, err := layerFile(layers, "/etc/group")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return specs.User{}, err
	}
	// GetExecUser wants nil, not a nil *os.File, for an absent file.
	var pr, gr io.Reader
	if passwd != nil {
		defer passwd.Close()
		pr = passwd
	}
	if group != nil {
		defer group.Close()
		gr = group
	}
	eu, err := user.GetExecUser(spec, &user.ExecUser{}, pr, gr)
	if err != nil {
		return specs.User{}, fmt.Errorf("user %q: %w", spec, err)
	}
	out := specs.User{UID: uint32(eu.Uid), GID: uint32(eu.Gid)}
	for _, s := range eu.Sgids {
		out.AdditionalGids = append(out.AdditionalGids, uint32(s))
	}
	return out, nil
}
