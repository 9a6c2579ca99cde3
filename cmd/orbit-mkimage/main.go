// Command orbit-mkimage writes an OCI image archive from directory trees,
// one layer per --layer, reproducibly. The build uses it to make the
// bundled demo image; tests use it to make the images they run.
//
//	orbit-mkimage --layer DIR [--layer DIR...] --name NAME:TAG \
//	    [--entrypoint JSON] [--cmd JSON] [--env K=V...] [--workdir DIR] [--user U] -o FILE
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/orbit-pods/orbit/image/archive"
)

type list []string

func (l *list) String() string     { return fmt.Sprint(*l) }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var (
		layers, env           list
		name, out             string
		entrypoint, cmd       string
		workdir, user, labels string
	)
	flag.Var(&layers, "layer", "directory to make a layer of (repeat, lowest first)")
	flag.Var(&env, "env", "environment variable K=V (repeat)")
	flag.StringVar(&name, "name", "", "image name the archive gives the image (NAME:TAG)")
	flag.StringVar(&out, "o", "", "output file")
	flag.StringVar(&entrypoint, "entrypoint", "", "entrypoint as a JSON array")
	flag.StringVar(&cmd, "cmd", "", "command as a JSON array")
	flag.StringVar(&workdir, "workdir", "", "working directory")
	flag.StringVar(&user, "user", "", "user (name or uid[:gid])")
	flag.StringVar(&labels, "labels", "", "labels as a JSON object")
	flag.Parse()
	if err := run(layers, env, name, out, entrypoint, cmd, workdir, user, labels); err != nil {
		fmt.Fprintln(os.Stderr, "orbit-mkimage:", err)
		os.Exit(1)
	}
}

func run(layers, env []string, name, out, entrypoint, cmd, workdir, user, labels string) error {
	if len(layers) == 0 || name == "" || out == "" {
		return fmt.Errorf("need --layer, --name and -o")
	}
	cfg := ocispec.ImageConfig{Env: env, WorkingDir: workdir, User: user}
	for flagName, v := range map[string]struct {
		s   string
		dst any
	}{"entrypoint": {entrypoint, &cfg.Entrypoint}, "cmd": {cmd, &cfg.Cmd}, "labels": {labels, &cfg.Labels}} {
		if v.s == "" {
			continue
		}
		if err := json.Unmarshal([]byte(v.s), v.dst); err != nil {
			return fmt.Errorf("--%s: %w", flagName, err)
		}
	}
	img, err := archive.ImageFromDirs(layers, cfg)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".orbit-mkimage-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := archive.WriteOCIArchive(tmp, img, name); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
